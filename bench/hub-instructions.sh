#!/usr/bin/env bash
# The Hub's cost in instructions, this tree against another revision, side by side:
#
#   bench/hub-instructions.sh [BASE_REV]     # default BASE_REV: HEAD~1
#
# Builds bench/hub-count (the criterion benchmark's Hub fixture, one fixed workload) in
# release against this tree's bbrt-protocol and against BASE_REV's, runs each under
# `valgrind --tool=callgrind` and prints instructions per message sent (10 and 1,000
# members) and for setting up and closing 1,000 connections, with the ratios. Callgrind
# counts instructions, not time: the same binary and input give the same count however
# busy the machine is, so small differences are real (docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
base=${1:-HEAD~1}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# With the root manifest: the crate inherits its package fields and dependencies from it.
git archive "$base" Cargo.toml crates/bbrt-protocol | tar -x -C "$scratch"
build() { # name, path of bbrt-protocol
  local dir="$scratch/$1"
  mkdir -p "$dir/src"
  cp bench/hub-count/main.rs "$dir/src/main.rs"
  cp bench/src/hub_fixture.rs "$dir/hub_fixture.rs"
  sed -i 's#"../src/hub_fixture.rs"#"../hub_fixture.rs"#' "$dir/src/main.rs"
  cat >"$dir/Cargo.toml" <<TOML
[package]
name = "hub-count"
version = "0.0.0"
edition = "2024"
[dependencies]
bbrt-protocol = { path = "$2" }
[profile.release]
debug = false
[workspace]
TOML
  cp Cargo.lock "$dir/Cargo.lock"
  (cd "$dir" && CARGO_TARGET_DIR="$scratch/target-$1" cargo build --release --quiet)
  echo "$scratch/target-$1/release/hub-count"
}
echo "building against $base and this tree..." >&2
before=$(build before "$scratch/crates/bbrt-protocol")
after=$(build after "$root/crates/bbrt-protocol")
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/Collected/ {print $4}'; }
row() { # label, members, sends
  local b0 b1 a0 a1
  b0=$(ir "$before" "$2" 0); a0=$(ir "$after" "$2" 0)
  if [ "$3" = 0 ]; then
    printf '| %s | %d | %d | %.3f |\n' "$1" "$b0" "$a0" "$(echo "$a0 / $b0" | bc -l)"
  else
    b1=$(ir "$before" "$2" "$3"); a1=$(ir "$after" "$2" "$3")
    local bs=$(( (b1 - b0) / $3 )) as=$(( (a1 - a0) / $3 ))
    printf '| %s | %d | %d | %.3f |\n' "$1" "$bs" "$as" "$(echo "$as / $bs" | bc -l)"
  fi
}
echo "| instructions | $base | this tree | ratio |"
echo "|---|---:|---:|---:|"
row "per message, 10 members" 10 2000
row "per message, 1,000 members" 1000 200
row "set up and close 1,000 connections" 1000 0
