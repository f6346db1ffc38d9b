#!/usr/bin/env bash
# The plugin's PHP suite: Debian's WordPress in a fresh MariaDB database, BuddyBoss stood in
# for (tests/stubs), PHPUnit in process and `php -S` for HTTP. Installs what it needs
# (Debian packages) and starts MariaDB on 127.0.0.1:3306 if nothing answers there.
# BBRT_TEST_DB_PORT, BBRT_TEST_DB_DATADIR and BBRT_TEST_DB_SOCKET choose another server
# (to check the start-up path on a machine whose 3306 is taken).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${BBRT_TEST_DB_PORT:-3306}"
datadir="${BBRT_TEST_DB_DATADIR:-/var/lib/mysql}"
socket="${BBRT_TEST_DB_SOCKET:-/run/mysqld/mysqld.sock}"
export BBRT_TEST_DB_HOST="127.0.0.1:$port"

need=()
command -v php >/dev/null || need+=(php-cli)
php -r "exit(extension_loaded('mysqli') ? 0 : 1);" 2>/dev/null || need+=(php-mysql)
[ -f /usr/share/wordpress/wp-settings.php ] || need+=(wordpress)
command -v phpunit >/dev/null || need+=(phpunit)
command -v phpcs >/dev/null || need+=(php-codesniffer)
command -v mariadb >/dev/null || need+=(mariadb-client)
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
if ! port_open && ! command -v mariadbd >/dev/null && ! [ -x /usr/sbin/mariadbd ]; then need+=(mariadb-server); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages for the plugin's tests: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
fi

if ! port_open; then
  echo "starting MariaDB on 127.0.0.1:$port"
  if [ ! -d "$datadir/mysql" ]; then
    mkdir -p "$datadir" && chown mysql:mysql "$datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" >/dev/null
  fi
  mkdir -p "$(dirname "$socket")" && chown mysql:mysql "$(dirname "$socket")"
  (mysqld_safe --user=mysql --datadir="$datadir" --socket="$socket" --pid-file="$datadir/bbrt-test.pid" \
     --bind-address=127.0.0.1 --port="$port" >/dev/null 2>&1 &)
  for _ in $(seq 100); do port_open && break; sleep 0.2; done
  port_open || { echo "MariaDB did not start" >&2; exit 1; }
fi

# root without a password over TCP where it works (this project's machines); otherwise
# (Debian's default: root only through the socket) a test user made through the socket.
if mariadb -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
  mysql_root() { mariadb -h127.0.0.1 -P"$port" -uroot "$@"; }
  export BBRT_TEST_DB_USER=root BBRT_TEST_DB_PASSWORD=
else
  mysql_root() { mariadb --socket="$socket" -uroot "$@"; }
  mysql_root -e "CREATE USER IF NOT EXISTS 'bbrt_test'@'127.0.0.1' IDENTIFIED BY 'bbrt_test';
                 CREATE USER IF NOT EXISTS 'bbrt_test'@'localhost' IDENTIFIED BY 'bbrt_test';
                 GRANT ALL ON \`bbrt_plugin_test_%\`.* TO 'bbrt_test'@'127.0.0.1';
                 GRANT ALL ON \`bbrt_plugin_test_%\`.* TO 'bbrt_test'@'localhost';"
  export BBRT_TEST_DB_USER=bbrt_test BBRT_TEST_DB_PASSWORD=bbrt_test
fi

db="bbrt_plugin_test_$$"
tmp="$(mktemp -d)"
export BBRT_TEST_DB="$db" BBRT_TEST_TMP="$tmp"
mkdir -p "$tmp/wp-content/plugins"
# The site's WordPress: links to Debian's files, with tests/wp-config.php in place of
# Debian's wp-config.php (which reads /etc/wordpress/config-<host>.php).
wordpress="${BBRT_TEST_WP:-/usr/share/wordpress}"
export BBRT_TEST_WP="$tmp/wordpress"
mkdir "$BBRT_TEST_WP"
for file in "$wordpress"/*; do
  if [ "$(basename "$file")" != wp-config.php ]; then ln -s "$file" "$BBRT_TEST_WP/"; fi
done
ln -s "$(pwd)/tests/wp-config.php" "$BBRT_TEST_WP/wp-config.php"
site_pid=""
cleanup() {
  if [ -n "$site_pid" ]; then
    # php -S's workers outlive their parent.
    pkill -P "$site_pid" 2>/dev/null || true
    kill "$site_pid" 2>/dev/null || true
    wait "$site_pid" 2>/dev/null || true
  fi
  # Any worker whose parent was already gone (found once after a CI run): the scratch
  # directory in its command line is this run's alone.
  pkill -f -- "-t $BBRT_TEST_WP" 2>/dev/null || true
  mysql_root -e "DROP DATABASE IF EXISTS \`$db\`" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mysql_root -e "CREATE DATABASE \`$db\` CHARACTER SET utf8mb4"

php tests/install.php
phpunit --configuration phpunit.xml.dist "$@"

# BBRT_TEST_SITE_CMD (scripts/test.sh's browser test): a command run next, against the same
# site served by `php -S` as http://wp.localhost:PORT (browsers resolve *.localhost to
# loopback), its plugin set up for a bbrt at http://127.0.0.1:PORT2 with a fresh ticket ring
# and a fresh site-event ring (the plugin POSTs its events to PORT2's /site/events).
# The command gets BBRT_WP_URL (the site's home), BBRT_WP_API (its REST root by 127.0.0.1,
# for bbrt), BBRT_WP_BBRT_LISTEN (PORT2's address), BBRT_WP_TICKET_KEYS and
# BBRT_WP_EVENT_KEYS (the rings), BBRT_WP_FIXTURE (the users and their ids) and
# BBRT_WP_EVENTS_SENT (where the site writes each event request it sent, one JSON a line).
status=0
if [ -n "${BBRT_TEST_SITE_CMD:-}" ]; then
  read -r wp_port bbrt_port < <(php -r '$a = stream_socket_server("tcp://127.0.0.1:0");
    $b = stream_socket_server("tcp://127.0.0.1:0");
    foreach (array($a, $b) as $s) { echo explode(":", stream_socket_get_name($s, false))[1], " "; } echo "\n";')
  keys="browser:$(php -r 'echo bin2hex(random_bytes(32));')"
  event_keys="events:$(php -r 'echo bin2hex(random_bytes(32));')"
  BBRT_TEST_HOST="wp.localhost:$wp_port" BBRT_TEST_BBRT_URL="http://127.0.0.1:$bbrt_port" \
    BBRT_TEST_TICKET_KEYS="$keys" BBRT_TEST_EVENT_KEYS="$event_keys" \
    BBRT_TEST_EVENTS_SENT="$tmp/events-sent.jsonl" PHP_CLI_SERVER_WORKERS=4 \
    php -S "127.0.0.1:$wp_port" -t "$BBRT_TEST_WP" tests/router.php >>"$tmp/php-server.log" 2>&1 &
  site_pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$wp_port") 2>/dev/null && break; sleep 0.1; done
  BBRT_WP_URL="http://wp.localhost:$wp_port" BBRT_WP_API="http://127.0.0.1:$wp_port/?rest_route=" \
    BBRT_WP_BBRT_LISTEN="127.0.0.1:$bbrt_port" BBRT_WP_TICKET_KEYS="$keys" \
    BBRT_WP_EVENT_KEYS="$event_keys" BBRT_WP_EVENTS_SENT="$tmp/events-sent.jsonl" \
    BBRT_WP_FIXTURE="$tmp/fixture.json" bash -c "$BBRT_TEST_SITE_CMD" || status=$?
fi

# WordPress logs PHP errors and failed queries instead of failing the request: any that
# come from the plugin fail the suite.
if grep -E "PHP (Fatal|Parse|Warning|Notice|Deprecated)|WordPress database error" "$tmp/debug.log" 2>/dev/null \
    | grep -E "$(pwd)/(bbrt\.php|includes/|uninstall\.php|mu-plugin/)|Bbrt\\\\"; then
  echo "the plugin logged PHP errors or database errors (above)" >&2
  exit 1
fi
exit "$status"
