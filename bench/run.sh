#!/usr/bin/env bash
# THE benchmark command: bbrt against the seed's Node.js server, side by side in one run.
#
#   bench/run.sh            # full run (about 5 minutes on a quiet machine)
#   bench/run.sh --quick    # smoke run: seconds instead of the full windows, fewer connections
#
# Builds bbrt-server and bbrt-bench in release, installs the Node baseline's locked
# dependencies, then runs every scenario against Node and against bbrt, each on a fresh
# server process pinned to core 0 while the load generator runs on core 1. Scenario
# `cluster` (bbrt only) compares 2 bbrt nodes joined through Redis with 1 node; it starts
# a private Redis on 127.0.0.1:PORT+100, pinned to the load generator's core. Writes
# bench/results/latest.{md,jsonl,png}.
# See docs/performance.md.
#
# Environment: SCENARIOS="fanout rate idle setup maxconn site cluster" (a subset),
# SERVERS="node bbrt", PORT (default 18080; cluster also uses PORT+1), BBRT_EXTRA_FLAGS
# (appended to bbrt's bench configuration).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

SCENARIOS=${SCENARIOS:-"fanout rate idle setup maxconn site cluster"}
SERVERS=${SERVERS:-"node bbrt"}
PORT=${PORT:-18080}
RESULTS=$ROOT/bench/results
LOGS=$RESULTS/logs
mkdir -p "$LOGS"

SERVER_CORE=0
LOADGEN_CORE=1
if [ "$(nproc --all)" -lt 2 ]; then
  echo "note: fewer than 2 cores; server and load generator share core 0" >&2
  LOADGEN_CORE=0
fi

echo "== build (release)"
cargo build --release -p bbrt-server -p bbrt-bench
BBRT=$ROOT/target/release/bbrt-server
BENCH=$ROOT/target/release/bbrt-bench

echo "== node baseline dependencies (npm ci, locked)"
(cd bench/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# bbrt's bench configuration (docs/performance.md): the embedded development site, rate
# limits and the anonymous-connection cap raised so the load generator, not a limit, is
# what the scenarios meet; warnings-only logging.
BBRT_FLAGS="--listen 127.0.0.1:{port} --log warn --frame-rate 1000000 --frame-burst 1000000 \
--max-anonymous-total 100000 --max-connections 100000 --site-concurrency 4096 ${BBRT_EXTRA_FLAGS:-}"

server_cmd() { # server scenario
  local server=$1 scenario=$2
  case "$server" in
    node)
      if [ "$scenario" = site ]; then
        echo "env SITE_URL={site} taskset -c $SERVER_CORE node $ROOT/bench/node/server.js --port {port}"
      else
        echo "taskset -c $SERVER_CORE node $ROOT/bench/node/server.js --port {port}"
      fi ;;
    bbrt)
      if [ "$scenario" = site ]; then
        echo "taskset -c $SERVER_CORE $BBRT $BBRT_FLAGS --buddyboss-url {site}"
      else
        echo "taskset -c $SERVER_CORE $BBRT $BBRT_FLAGS"
      fi ;;
  esac
}

if [ "$QUICK" = 1 ]; then
  FANOUT="--secs 1"
  RATE="--secs 1"
  IDLE="--conns 1000"
  SETUP="--conns 1000"
  MAXCONN="--conns 3000"
  SITE="--senders 200 --typers 100 --phase-secs 3"
  CLUSTER="--secs 1"
  OUT=$RESULTS/quick.jsonl
else
  FANOUT="--secs 5"
  RATE="--secs 5"
  IDLE="--conns 5000"
  SETUP="--conns 5000"
  MAXCONN="--conns 19950"
  SITE="--senders 1000 --typers 400 --phase-secs 5"
  CLUSTER="--secs 5"
  OUT=$RESULTS/latest.jsonl
fi
: > "$OUT"

# Scenario cluster: the nodes meet through a Redis of the run's own (docs/scaling.md),
# pinned to the load generator's core so that core 0 holds the bbrt nodes alone (in a
# deployment Redis has a machine of its own); stopped when the script ends.
case " $SCENARIOS " in *" cluster "*) WITH_CLUSTER=1 ;; *) WITH_CLUSTER=0 ;; esac
REDIS_PORT=$((PORT + 100))
if [ "$WITH_CLUSTER" = 1 ]; then
  echo "== starting a private redis-server on 127.0.0.1:$REDIS_PORT (core $LOADGEN_CORE, no persistence)"
  REDIS_DIR=$(mktemp -d)
  taskset -c "$LOADGEN_CORE" redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir "$REDIS_DIR" >/dev/null
  trap 'redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; rm -rf "$REDIS_DIR"' EXIT
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null || { echo "Redis does not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }
fi

# The load generator may hold ~20,000 sockets: raise its soft fd limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

FAILED=0
for scenario in $SCENARIOS; do
  case "$scenario" in
    fanout) args="$FANOUT --count-writes" ;;
    rate) args=$RATE ;;
    idle) args=$IDLE ;;
    setup) args=$SETUP ;;
    maxconn) args=$MAXCONN ;;
    site) args=$SITE ;;
    cluster) args="$CLUSTER --redis redis://127.0.0.1:$REDIS_PORT" ;;
    *) echo "unknown scenario $scenario" >&2; exit 64 ;;
  esac
  for server in $SERVERS; do
    # Node has no cluster mode: scenario cluster is bbrt's 2 nodes against bbrt's 1.
    if [ "$scenario" = cluster ] && [ "$server" != bbrt ]; then
      continue
    fi
    echo "== scenario $scenario: $server"
    # shellcheck disable=SC2086
    if ! timeout 900 taskset -c "$LOADGEN_CORE" "$BENCH" "$scenario" $args \
        --server "$server" --server-cmd "$(server_cmd "$server" "$scenario")" --port "$PORT" \
        --server-log "$LOGS/$scenario-$server.log" --out "$OUT"; then
      FAILED=$((FAILED + 1))
    fi
    # Let the kernel reap the last run's sockets (TIME_WAIT is per 4-tuple; ports differ anyway).
    sleep 1
  done
done

CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
CLUSTER_ABOUT=""
if [ "$WITH_CLUSTER" = 1 ]; then
  CLUSTER_ABOUT="
- cluster: $(redis-server --version | cut -d' ' -f1-3), a private one pinned to core $LOADGEN_CORE with the load generator (its CPU is reported apart); each node runs bbrt's flags plus \`--redis redis://127.0.0.1:$REDIS_PORT --redis-prefix bbrt-bench-<pid>-<ns> --node-id nK --allow-dev-site-with-redis\` (each node runs its own development site), on ports $PORT and $((PORT + 1))"
fi
ABOUT="- $(date -u '+%Y-%m-%d %H:%M UTC'); mode: $([ "$QUICK" = 1 ] && echo quick || echo full)
- $(nproc --all) cores ($CPU_MODEL), $(free -g | awk '/Mem:/{print $2}') GiB, Linux $(uname -r); server on core $SERVER_CORE, load generator on core $LOADGEN_CORE (taskset)
- Node $(node --version), ws $(node -p "require('$ROOT/bench/node/node_modules/ws/package.json').version"); $(rustc --version)
- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine shows up here)
- bbrt flags: \`$BBRT_FLAGS\`$CLUSTER_ABOUT"

if [ "$QUICK" = 1 ]; then
  "$BENCH" report --input "$OUT" --md "$RESULTS/quick.md" --png "$RESULTS/quick.png" --about="$ABOUT"
  echo "== wrote $RESULTS/quick.md and quick.png (a smoke run does not replace latest.*)"
  cat "$RESULTS/quick.md"
else
  "$BENCH" report --input "$OUT" --md "$RESULTS/latest.md" --png "$RESULTS/latest.png" --about="$ABOUT"
  echo "== wrote $RESULTS/latest.md, latest.jsonl and latest.png"
  cat "$RESULTS/latest.md"
fi
if [ "$FAILED" -gt 0 ]; then
  echo "== $FAILED scenario run(s) failed (see the table's Runs section)" >&2
  exit 1
fi
