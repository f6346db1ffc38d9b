#!/usr/bin/env bash
# THE benchmark command: bbrt against the seed's Node.js server and its peers (a Socket.IO 4
# server, Sockudo: a Pusher-protocol server in Rust), side by side in one run.
#
#   bench/run.sh            # full run (about 17 minutes on a quiet machine)
#   bench/run.sh --quick    # smoke run: seconds instead of the full windows, fewer connections
#
# Builds bbrt-server and bbrt-bench in release, installs the Node baseline's and the
# Socket.IO peer's locked dependencies (npm ci), installs Sockudo into bench/.cache/sockudo
# when it is not there yet (cargo install --locked: a long compile, once), then runs every
# scenario against every server, each on a fresh server process pinned to core 0 while
# the load generator runs on core 1. Scenario
# `cluster` (bbrt only) compares 2 bbrt nodes joined through Redis with 1 node; it starts
# a private Redis on 127.0.0.1:PORT+100, pinned to the load generator's core. Writes
# bench/results/latest.{md,jsonl,png}.
# See docs/performance.md.
#
# Environment: SCENARIOS="fanout rate ramp idle setup maxconn storm site cluster" (a subset),
# SERVERS="node socketio sockudo bbrt" (a subset), PORT (default 18080; cluster also uses
# PORT+1), BBRT_EXTRA_FLAGS (appended to bbrt's bench configuration), REPEAT (runs of each
# scenario in REPEATED, default 3, 1 with --quick; the report gives medians) and REPEATED
# (default "rate cluster").
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 64 ;;
  esac
done

SCENARIOS=${SCENARIOS:-"fanout rate ramp idle setup maxconn storm site cluster"}
SERVERS=${SERVERS:-"node socketio sockudo bbrt"}
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
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BBRT=$TARGET/release/bbrt-server
BENCH=$TARGET/release/bbrt-bench

echo "== node baseline dependencies (npm ci, locked)"
(cd bench/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

has_server() { case " $SERVERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if has_server socketio; then
  echo "== socket.io peer dependencies (npm ci, locked)"
  (cd bench/socketio && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Sockudo, the Pusher-protocol peer: installed once from crates.io with its own lockfile
# into a cache the repository ignores.
SOCKUDO_ROOT=$ROOT/bench/.cache/sockudo
SOCKUDO=$SOCKUDO_ROOT/bin/sockudo
SOCKUDO_VERSION=5.2.0
if has_server sockudo; then
  if [ ! -x "$SOCKUDO" ]; then
    # Its build runs protoc (metrics-exporter-tcp's build script).
    command -v protoc >/dev/null || {
      echo "installing sockudo needs protoc (Debian: apt-get install protobuf-compiler)" >&2
      exit 1
    }
    echo "== installing sockudo $SOCKUDO_VERSION into bench/.cache/sockudo (cargo install --locked; a long compile, once)"
    CARGO_TARGET_DIR=$ROOT/bench/.cache/sockudo-build \
      nice -n 15 cargo install sockudo --version "$SOCKUDO_VERSION" --locked --root "$SOCKUDO_ROOT"
  fi
  # Sockudo's bench configuration: loopback only (HOST and PORT from the environment,
  # which Sockudo reads over its file), one app with client events enabled and every limit
  # raised, the rate limiter off, in-memory adapter, cache and queue (nothing reaches the
  # shared Redis), no metrics listener, warnings only in its log (RUST_LOG=warn, as bbrt
  # runs with --log warn: Sockudo logs every connection and subscription at info).
  mkdir -p "$RESULTS/tmp"
  SOCKUDO_CONFIG=$RESULTS/tmp/sockudo.json
  cat > "$SOCKUDO_CONFIG" <<JSON
{
  "debug": false,
  "host": "127.0.0.1",
  "mode": "production",
  "adapter": { "driver": "local" },
  "cache": { "driver": "memory" },
  "queue": { "driver": "memory" },
  "rate_limiter": { "enabled": false, "driver": "memory" },
  "metrics": { "enabled": false, "host": "127.0.0.1" },
  "app_manager": {
    "driver": "memory",
    "array": {
      "apps": [
        {
          "id": "bbrt-bench",
          "key": "bbrt-bench-key",
          "secret": "bbrt-bench-secret",
          "enabled": true,
          "max_connections": 1000000,
          "enable_client_messages": true,
          "max_client_events_per_second": 100000000,
          "max_read_requests_per_second": 100000000,
          "max_backend_events_per_second": 100000000
        }
      ]
    }
  }
}
JSON
fi

# bbrt's bench configuration (docs/performance.md): the embedded development site, rate
# limits and the anonymous-connection cap raised so the load generator, not a limit, is
# what the scenarios meet; warnings-only logging.
BBRT_FLAGS="--listen 127.0.0.1:{port} --log warn --frame-rate 1000000 --frame-burst 1000000 \
--max-anonymous-total 100000 --max-connections 100000 --site-concurrency 4096 ${BBRT_EXTRA_FLAGS:-}"

server_cmd() { # server scenario
  local server=$1 scenario=$2
  case "$server" in
    socketio)
      echo "taskset -c $SERVER_CORE node $ROOT/bench/socketio/server.js --port {port}" ;;
    sockudo)
      echo "env HOST=127.0.0.1 PORT={port} METRICS_ENABLED=false RUST_LOG=warn taskset -c $SERVER_CORE $SOCKUDO --config $SOCKUDO_CONFIG" ;;
    node)
      if [ "$scenario" = site ] || [ "$scenario" = storm ]; then
        echo "env SITE_URL={site} taskset -c $SERVER_CORE node $ROOT/bench/node/server.js --port {port}"
      else
        echo "taskset -c $SERVER_CORE node $ROOT/bench/node/server.js --port {port}"
      fi ;;
    bbrt)
      if [ "$scenario" = site ] || [ "$scenario" = storm ]; then
        echo "taskset -c $SERVER_CORE $BBRT $BBRT_FLAGS --buddyboss-url {site}"
      else
        echo "taskset -c $SERVER_CORE $BBRT $BBRT_FLAGS"
      fi ;;
  esac
}

# The wire protocol of each server (the load generator's client mode).
proto_of() {
  case "$1" in
    sockudo) echo pusher ;;
    socketio) echo socket-io ;;
    *) echo seed ;;
  esac
}

if [ "$QUICK" = 1 ]; then
  FANOUT="--secs 1"
  RATE="--secs 1"
  RAMP="--secs 1 --rates 2000,8000,32000"
  IDLE="--conns 1000"
  SETUP="--conns 1000"
  MAXCONN="--conns 3000"
  STORM="--conns 1000"
  SITE="--senders 200 --typers 100 --phase-secs 3"
  CLUSTER="--secs 1"
  OUT=$RESULTS/quick.jsonl
else
  FANOUT="--secs 5"
  RATE="--secs 5"
  RAMP="--secs 5"
  IDLE="--conns 5000"
  SETUP="--conns 5000"
  MAXCONN="--conns 19950"
  STORM="--conns 5000"
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

# The scenarios whose goal rows are the noisiest (CPU per delivery at a moderate rate,
# p99, the scale-out ratios) run REPEAT times, the servers interleaved; the report gives
# the median of each figure and lists every run.
if [ "$QUICK" = 1 ]; then REPEAT=${REPEAT:-1}; else REPEAT=${REPEAT:-3}; fi
REPEATED=${REPEATED:-"rate cluster"}
repeats_of() { case " $REPEATED " in *" $1 "*) echo "$REPEAT" ;; *) echo 1 ;; esac; }

FAILED=0
for scenario in $SCENARIOS; do
  case "$scenario" in
    fanout) args="$FANOUT --count-writes" ;;
    rate) args="$RATE --count-writes" ;;
    ramp) args=$RAMP ;;
    idle) args=$IDLE ;;
    setup) args=$SETUP ;;
    maxconn) args=$MAXCONN ;;
    storm) args=$STORM ;;
    site) args=$SITE ;;
    cluster) args="$CLUSTER --redis redis://127.0.0.1:$REDIS_PORT" ;;
    *) echo "unknown scenario $scenario" >&2; exit 64 ;;
  esac
  runs=$(repeats_of "$scenario")
  for run in $(seq "$runs"); do
    for server in $SERVERS; do
      # Node has no cluster mode: scenario cluster is bbrt's 2 nodes against bbrt's 1.
      if [ "$scenario" = cluster ] && [ "$server" != bbrt ]; then
        continue
      fi
      # The site scenario needs the seed's protocol with a site behind the server (Node's
      # SITE_URL, bbrt's --buddyboss-url); the peers store nothing.
      if [ "$scenario" = site ] && [ "$(proto_of "$server")" != seed ]; then
        continue
      fi
      # Scenario 1's closed loop sends again when a client's own message comes back, and a
      # Pusher server never echoes a client event to its sender: Sockudo's saturation is the
      # ramp's last rate instead.
      if [ "$scenario" = fanout ] && [ "$server" = sockudo ]; then
        continue
      fi
      # The seed's servers (and the Socket.IO peer written like it) broadcast every
      # user_connected to every connection: a storm of 5,000 reconnects is scenario 4's N²
      # presence broadcast again, minutes of it, and says nothing scenario 4 does not.
      if [ "$scenario" = storm ] && { [ "$server" = node ] || [ "$server" = socketio ]; }; then
        continue
      fi
      echo "== scenario $scenario: $server (run $run of $runs)"
      # shellcheck disable=SC2086
      if ! timeout 900 taskset -c "$LOADGEN_CORE" "$BENCH" "$scenario" $args \
          --server "$server" --proto "$(proto_of "$server")" \
          --server-cmd "$(server_cmd "$server" "$scenario")" --port "$PORT" \
          --server-log "$LOGS/$scenario-$server$([ "$runs" = 1 ] || echo "-$run").log" --out "$OUT"; then
        FAILED=$((FAILED + 1))
      fi
      # Let the kernel reap the last run's sockets (TIME_WAIT is per 4-tuple; ports differ anyway).
      sleep 1
    done
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
- Node $(node --version), ws $(node -p "require('$ROOT/bench/node/node_modules/ws/package.json').version"); $(rustc --version)$(has_server socketio && echo "; socket.io $(node -p "require('$ROOT/bench/socketio/node_modules/socket.io/package.json').version")")$(has_server sockudo && echo "; $("$SOCKUDO" --version 2>/dev/null | head -1 || echo "sockudo $SOCKUDO_VERSION") (jemalloc, its default features)")
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
