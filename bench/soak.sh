#!/usr/bin/env bash
# The soak (not in CI): one bbrt-server process, mixed traffic with every client
# reconnecting each minute, for MINUTES minutes (default 30). Prints one CSV line a minute
# (server RSS, messages sent/acked/delivered/expected, typing, errors, closes) and exits
# non-zero if anything was lost or refused. RSS must stay flat.
#
#   bench/soak.sh                 # 30 minutes, 200 clients, 200 messages/s
#   MINUTES=2 bench/soak.sh       # a short one
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30}
PORT=${PORT:-18090}
cargo build --release -p bbrt-server -p bbrt-bench
exec target/release/bbrt-bench soak --server bbrt \
  --server-cmd "target/release/bbrt-server --listen 127.0.0.1:{port} --log warn" \
  --port "$PORT" --minutes "$MINUTES" "$@"
