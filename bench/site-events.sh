#!/usr/bin/env bash
# Site events, measured (issue 19's figures): from the site's hook to the `message` frame at
# a bbrt client, and what the companion plugin adds to the web request with bbrt up, down
# and blackholed. Part of the benchmark, run on its own (not by bench/run.sh, not by CI):
#
#   bench/site-events.sh           # N=300 messages per case in 4 rounds, about 3 minutes
#   N=40 ROUNDS=2 bench/site-events.sh   # a smoke run, under a minute
#
# Sets up Debian's WordPress in a scratch directory with a fresh MariaDB database (root
# without a password on 127.0.0.1:3306), the plugin and its tests' BuddyBoss stand-in
# (the plugin's tests/install.php installs the site, tests/wp-config.php configures it),
# served by its own nginx (-c, a config of its own) and its own PHP-FPM pool, on loopback
# ports of their own. A release bbrt-server with --site-event-keys is the plugin's events
# URL. bench/site-events/send.php is the page a request sends through: alice's message to
# bob by messages_new_message(), which fires messages_message_sent. bob is connected to bbrt
# and joined to the thread (bench/node/site-events-client.js). The cases, each on a fresh
# PHP-FPM: events off (no event ring), bbrt up, bbrt down (a closed port), bbrt blackholed (a
# listener that accepts and never answers); and, as the worst case, down and blackholed with
# the plugin's pause after a failure lifted before every request. Prints a table, writes
# bench/results/site-events.md, drops the database and stops everything it started; a
# watchdog ends the run after LIMIT seconds (default 300).
#
# Environment: N (300 per case, over all rounds), ROUNDS (4), WARMUP (10 per case and
# round: each runs on a fresh PHP-FPM), LIMIT (300), FPM_CHILDREN (4), BBRT_SERVER_BIN (a
# bbrt-server to use instead of building the release one), KEEP_SCRATCH=1 (leave the
# scratch directory and its logs: nginx, PHP-FPM, WordPress's debug.log, bbrt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PLUGIN=$ROOT/integrations/wordpress/bbrt
N=${N:-300}
WARMUP=${WARMUP:-10}
ROUNDS=${ROUNDS:-4}
LIMIT=${LIMIT:-300}
FPM_CHILDREN=${FPM_CHILDREN:-4}
RESULTS=$ROOT/bench/results/site-events.md

need=()
[ -f /usr/share/wordpress/wp-settings.php ] || need+=(wordpress)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need+=(php-fpm)
php -r "exit(extension_loaded('mysqli') ? 0 : 1);" 2>/dev/null || need+=(php-mysql)
command -v mariadb >/dev/null || need+=(mariadb-client)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${need[*]} (waits for another apt)"
  (apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}") >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
FPM=$(ls /usr/sbin/php-fpm* | sort -V | tail -n 1)
mysql_root() { mariadb -h127.0.0.1 -P3306 -uroot "$@"; }
mysql_root -e 'SELECT 1' >/dev/null || { echo "no MariaDB for root without a password on 127.0.0.1:3306" >&2; exit 1; }

echo "== build (release) and the client's dependencies"
if [ -n "${BBRT_SERVER_BIN:-}" ]; then
  BBRT=$BBRT_SERVER_BIN
else
  cargo build --release -p bbrt-server
  BBRT=$ROOT/target/release/bbrt-server
fi
[ -d bench/node/node_modules/ws ] || (cd bench/node && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

tmp=$(mktemp -d /tmp/bbrt-site-events.XXXXXX)
db="bbrt_site_events_$$"
pids=()
fpm_pid=""
stop() { # pid: TERM, then KILL after 5 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  [ -n "$fpm_pid" ] && stop "$fpm_pid"
  for pid in "${pids[@]}"; do stop "$pid"; done
  mysql_root -e "DROP DATABASE IF EXISTS \`$db\`" || true
  [ -n "${KEEP_SCRATCH:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The watchdog checks every second that the run is still there, so once stopped it ends too.
(for ((i = 0; i < LIMIT; i++)); do sleep 1; kill -0 $$ 2>/dev/null || exit 0; done
  echo "site-events: over ${LIMIT}s, stopping" >&2; kill -TERM $$) &
watchdog=$!
pids+=("$watchdog")

# Four loopback ports nothing listens on: the site, bbrt, bbrt down (left closed), the blackhole.
read -r site_port bbrt_port closed_port hole_port < <(php -r '$s = array();
  for ($i = 0; $i < 4; $i++) { $s[] = stream_socket_server("tcp://127.0.0.1:0"); }
  foreach ($s as $x) { echo explode(":", stream_socket_get_name($x, false))[1], " "; } echo "\n";')
site="http://127.0.0.1:$site_port"

echo "== the site: WordPress in $tmp, database $db, nginx + PHP-FPM on $site"
export BBRT_TEST_DB="$db" BBRT_TEST_TMP="$tmp" BBRT_TEST_WP="$tmp/wordpress" \
  BBRT_TEST_DB_HOST=127.0.0.1:3306 BBRT_TEST_DB_USER=root BBRT_TEST_DB_PASSWORD= \
  BBRT_TEST_HOST="127.0.0.1:$site_port"
mkdir -p "$tmp/wp-content/plugins" "$BBRT_TEST_WP" "$tmp/nginx"
chmod 711 "$tmp" # nginx's workers (not root) reach PHP-FPM's socket in it
# As the plugin's tests/run.sh builds it: Debian's files, tests/wp-config.php in place of
# Debian's wp-config.php.
for file in /usr/share/wordpress/*; do
  [ "$(basename "$file")" = wp-config.php ] || ln -s "$file" "$BBRT_TEST_WP/"
done
ln -s "$PLUGIN/tests/wp-config.php" "$BBRT_TEST_WP/wp-config.php"
mysql_root -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4"
php "$PLUGIN/tests/install.php"
read -r bob_id bob_basic < <(php -r '$f = json_decode(file_get_contents($argv[1]), true);
  echo $f["users"]["bob"]["id"], " ", $f["users"]["bob"]["basic"], "\n";' "$tmp/fixture.json")

cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
daemon off;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  proxy_temp_path $tmp/nginx/proxy;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$site_port;
    root $BBRT_TEST_WP;
    location = /bbrt-bench-send {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $ROOT/bench/site-events/send.php;
      fastcgi_pass unix:$tmp/php-fpm.sock;
    }
    # Everything else (bbrt's REST calls: ?rest_route=) through the tests' front controller.
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $PLUGIN/tests/router.php;
      fastcgi_param SCRIPT_NAME /index.php;
      fastcgi_pass unix:$tmp/php-fpm.sock;
    }
  }
}
CONF
"$NGINX" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" &
pids+=($!)

# One PHP-FPM per case: the pool's environment carries the case's event settings.
start_fpm() { # events_url event_keys [no_pause]
  local as_root=""
  [ "$(id -u)" = 0 ] && as_root="user = root"
  cat >"$tmp/php-fpm.conf" <<CONF
[global]
pid = $tmp/php-fpm.pid
error_log = $tmp/php-fpm.log
daemonize = no
[bench]
$as_root
listen = $tmp/php-fpm.sock
listen.mode = 0666
pm = static
pm.max_children = $FPM_CHILDREN
clear_env = yes
env[BBRT_TEST_DB] = $BBRT_TEST_DB
env[BBRT_TEST_TMP] = $BBRT_TEST_TMP
env[BBRT_TEST_WP] = $BBRT_TEST_WP
env[BBRT_TEST_DB_HOST] = $BBRT_TEST_DB_HOST
env[BBRT_TEST_DB_USER] = $BBRT_TEST_DB_USER
env[BBRT_TEST_HOST] = $BBRT_TEST_HOST
CONF
  # PHP-FPM refuses an empty env[] value: a setting the case does not have is left out.
  [ -z "$1" ] || echo "env[BBRT_BENCH_EVENTS_URL] = $1" >>"$tmp/php-fpm.conf"
  [ -z "$2" ] || echo "env[BBRT_BENCH_EVENT_KEYS] = $2" >>"$tmp/php-fpm.conf"
  [ -z "${3:-}" ] || echo "env[BBRT_BENCH_NO_PAUSE] = $3" >>"$tmp/php-fpm.conf"
  rm -f "$tmp/php-fpm.sock"
  "$FPM" -R -F -y "$tmp/php-fpm.conf" &
  fpm_pid=$!
  for _ in $(seq 100); do [ -S "$tmp/php-fpm.sock" ] && break; sleep 0.1; done
  [ -S "$tmp/php-fpm.sock" ] || { echo "PHP-FPM did not start ($tmp/php-fpm.log)" >&2; exit 1; }
  # A pause the last case's failures left must not carry over.
  mysql_root "$db" -e "DELETE FROM wp_options WHERE option_name LIKE '%bbrt_events_paused%'"
}
stop_fpm() { stop "$fpm_pid"; fpm_pid=""; }
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$site_port") 2>/dev/null && break; sleep 0.1; done

# bbrt reads the site's REST index at start: the first case's PHP-FPM is up before it.
start_fpm "" ""
keys="bench:$(php -r 'echo bin2hex(random_bytes(32));')"
"$BBRT" --listen "127.0.0.1:$bbrt_port" --log warn --buddyboss-url "$site/?rest_route=" \
  --auth-scheme basic --site-event-keys "$keys" >"$tmp/bbrt.log" 2>&1 &
pids+=($!)
# The blackhole: accepts, reads, never answers.
node -e 'require("net").createServer((s) => s.resume()).listen(Number(process.argv[1]), "127.0.0.1")' "$hole_port" &
pids+=($!)
for port in "$bbrt_port" "$hole_port"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

client() { timeout 120 node bench/node/site-events-client.js --site "$site/bbrt-bench-send" --n "$n" --warmup "$warmup" "$@"; }
# Rounds: every case once per round, so a machine that gets busier or quieter during the
# run moves every case alike; each case's figures are over all its rounds.
CASES="off up down blackhole down-every blackhole-every"
per_round=$(( (N + ROUNDS - 1) / ROUNDS ))
for round in $(seq "$ROUNDS"); do
  for case in $CASES; do
    n=$per_round warmup=$WARMUP
    case "$case" in
      off) [ -n "$fpm_pid" ] || start_fpm "" "" ;;
      up) start_fpm "http://127.0.0.1:$bbrt_port/site/events" "$keys" ;;
      down) start_fpm "http://127.0.0.1:$closed_port/site/events" "$keys" ;;
      blackhole) start_fpm "http://127.0.0.1:$hole_port/site/events" "$keys" ;;
      down-every) start_fpm "http://127.0.0.1:$closed_port/site/events" "$keys" 1 ;;
      # Each request then holds its PHP-FPM child for the 2 s POST timeout: fewer of them.
      blackhole-every) start_fpm "http://127.0.0.1:$hole_port/site/events" "$keys" 1
        n=$(( (per_round + 4) / 5 )) warmup=$FPM_CHILDREN ;;
    esac
    echo "== round $round/$ROUNDS, case $case: $warmup + $n requests"
    if [ "$case" = up ]; then
      line=$(client --ws "ws://127.0.0.1:$bbrt_port/" --user "$bob_id" --token "$bob_basic")
    else
      line=$(client)
    fi
    echo "{\"case\":\"$case\",${line#\{}" >>"$tmp/runs.jsonl"
    stop_fpm
  done
done
declare -A out
while read -r line; do
  name=$(php -r 'echo json_decode($argv[1], true)["case"];' "$line")
  out[$name]=$line
  echo "$line"
done < <(node bench/node/site-events-client.js --summarize "$tmp/runs.jsonl")

field() { php -r '$o = json_decode($argv[1], true); $v = $o; foreach (explode(".", $argv[2]) as $k) { $v = $v[$k] ?? "-"; } echo is_float($v) ? sprintf("%.2f", $v) : $v;' "$1" "$2"; }
{
  echo "# Site events: hook to frame, and the plugin's cost to the web request"
  echo
  echo "bench/site-events.sh, $(date -u +%Y-%m-%dT%H:%MZ), N=$N per case in $ROUNDS rounds (+$WARMUP warm-up per round),"
  echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $("$FPM" -v | head -n 1 | cut -d' ' -f1-2) (pm static, $FPM_CHILDREN children),"
  echo "WordPress $(php -r 'include "/usr/share/wordpress/wp-includes/version.php"; echo $wp_version;'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "From messages_message_sent (microtime, PHP-FPM) to bob's \`message\` frame (ws client), bbrt up:"
  echo
  echo "| hook → frame | median ms | p99 ms | max ms | missing |"
  echo "|---|---|---|---|---|"
  echo "| bbrt up | $(field "${out[up]}" hook_to_frame_ms.p50) | $(field "${out[up]}" hook_to_frame_ms.p99) | $(field "${out[up]}" hook_to_frame_ms.max) | $(field "${out[up]}" missing) |"
  echo
  echo "The web request (GET /bbrt-bench-send, one at a time, as the client sees it):"
  echo
  echo "| case | requests | median ms | p99 ms | max ms |"
  echo "|---|---|---|---|---|"
  for case in $CASES; do
    label=$case
    case "$case" in
      off) label="events off (no event ring)" ;;
      up) label="bbrt up" ;;
      down) label="bbrt down (port closed)" ;;
      blackhole) label="bbrt blackholed (accepts, never answers)" ;;
      down-every) label="bbrt down, no pause (every request tries)" ;;
      blackhole-every) label="bbrt blackholed, no pause (every request tries)" ;;
    esac
    echo "| $label | $(field "${out[$case]}" request_ms.count) | $(field "${out[$case]}" request_ms.p50) | $(field "${out[$case]}" request_ms.p99) | $(field "${out[$case]}" request_ms.max) |"
  done
} >"$RESULTS"
echo
cat "$RESULTS"
# As the plugin's tests/run.sh: errors from the plugin or the bench page fail the run
# (Debian's WordPress 6.1 logs deprecations of its own under PHP 8.2).
if grep -E "PHP (Fatal|Parse|Warning|Notice|Deprecated)|WordPress database error" "$tmp/debug.log" 2>/dev/null \
    | grep -E "$PLUGIN/(bbrt\.php|includes/)|bench/site-events/|Bbrt\\\\"; then
  echo "the plugin or the bench page logged PHP or database errors (above)" >&2
  exit 1
fi
