#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: starts what the tests need, then tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Redis for the scale-out tests (the standard local instance; tests use their own prefixes).
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "starting redis-server on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && break; sleep 0.1; done
fi

cargo test --workspace --all-features --locked "$@"

# The browser tests (examples/browser/e2e/e2e.mjs): Debian's Chromium driven by
# playwright-core (installed from npm; it downloads no browser of its own), launched once for
# all of them. BBRT_SKIP_BROWSER=1 skips them.
browser_test=""
if [ "${BBRT_SKIP_BROWSER:-0}" != 1 ]; then
  if ! command -v chromium >/dev/null; then
    echo "installing Debian's chromium for the browser test"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  fi
  # The relayed call runs through Debian's coturn, started by the test itself.
  if ! command -v turnserver >/dev/null; then
    echo "installing Debian's coturn for the relayed call"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn) >/dev/null
  fi
  cargo build -p bbrt-server --locked
  BBRT_SERVER_BIN="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/bbrt-server"
  export BBRT_SERVER_BIN
  (cd examples/browser/e2e && npm ci --no-audit --no-fund --silent)
  browser_test="node $(printf %q "$(pwd)/examples/browser/e2e/e2e.mjs")"
fi

# The WordPress plugin's PHP suite (installs Debian's php-cli, php-mysql, wordpress,
# phpunit, php-codesniffer and starts MariaDB when missing; BBRT_SKIP_PHP=1 skips it). The
# browser tests run inside it, against its WordPress (the example page, and connection
# tickets and site events from the plugin); without it, the example page alone.
if [ "${BBRT_SKIP_PHP:-0}" != 1 ]; then
  BBRT_TEST_SITE_CMD="$browser_test" integrations/wordpress/bbrt/tests/run.sh
elif [ -n "$browser_test" ]; then
  bash -c "$browser_test"
fi
