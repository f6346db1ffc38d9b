#!/usr/bin/env bash
# The plugin's static checks: `php -l` on every file, the phpcs ruleset (phpcs.xml.dist,
# Debian's php-codesniffer), every translatable string in the `bbrt` text domain, and the
# live website script's unit tests (Node's own runner, no npm packages; under a second).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v php >/dev/null || need+=(php-cli)
command -v phpcs >/dev/null || need+=(php-codesniffer)
command -v node >/dev/null || need+=(nodejs)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages for the plugin's lint: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null
fi

find . -name '*.php' -print0 | xargs -0 -n1 php -l >/dev/null
echo "php -l: $(find . -name '*.php' | wc -l) files, no syntax errors"

phpcs -q --report=emacs
echo "phpcs: clean"

# Translation calls in the plugin's own code name the bbrt text domain.
if grep -rnE "(\b__|_e|_x|_n|esc_html__|esc_attr__|esc_html_e|esc_attr_e)\( " bbrt.php includes/ \
    | grep -v "'bbrt' )" ; then
  echo "translatable strings above are not in the bbrt text domain" >&2
  exit 1
fi
echo "i18n: every string in the bbrt text domain"

# The live website script (assets/js): syntax, then its tests with stand-ins for BuddyBoss.
for script in assets/js/*.js; do node --check "$script"; done
node --test tests/js/*.test.js >/tmp/bbrt-live-js-tests.$$ 2>&1 || { cat /tmp/bbrt-live-js-tests.$$ >&2; rm -f /tmp/bbrt-live-js-tests.$$; exit 1; }
echo "js: $(grep -E '^# (pass|fail)' /tmp/bbrt-live-js-tests.$$ | tr '\n' ' ')"
rm -f /tmp/bbrt-live-js-tests.$$
