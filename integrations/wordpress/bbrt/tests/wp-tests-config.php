<?php
/**
 * The test site's configuration, shared by install.php, bootstrap.php and router.php.
 * run.sh sets BBRT_TEST_DB (a fresh database) and BBRT_TEST_TMP (a scratch directory).
 *
 * @package Bbrt\Tests
 */

define( 'ABSPATH', getenv( 'BBRT_TEST_WP' ) ? rtrim( getenv( 'BBRT_TEST_WP' ), '/' ) . '/' : '/usr/share/wordpress/' );
define( 'DB_NAME', getenv( 'BBRT_TEST_DB' ) ? getenv( 'BBRT_TEST_DB' ) : 'bbrt_plugin_test' );
define( 'DB_USER', getenv( 'BBRT_TEST_DB_USER' ) ? getenv( 'BBRT_TEST_DB_USER' ) : 'root' );
define( 'DB_PASSWORD', (string) getenv( 'BBRT_TEST_DB_PASSWORD' ) );
define( 'DB_HOST', getenv( 'BBRT_TEST_DB_HOST' ) ? getenv( 'BBRT_TEST_DB_HOST' ) : '127.0.0.1' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );
define( 'WP_ENVIRONMENT_TYPE', 'local' ); // Application Passwords over plain http.
define( 'WP_HOME', 'http://' . ( getenv( 'BBRT_TEST_HOST' ) ? getenv( 'BBRT_TEST_HOST' ) : '127.0.0.1' ) );
define( 'WP_SITEURL', WP_HOME );
define( 'WP_CONTENT_DIR', getenv( 'BBRT_TEST_TMP' ) . '/wp-content' );
define( 'WP_PLUGIN_DIR', WP_CONTENT_DIR . '/plugins' );
define( 'WPMU_PLUGIN_DIR', __DIR__ . '/mu-plugins' );
define( 'DISABLE_WP_CRON', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_DISPLAY', false );
define( 'WP_DEBUG_LOG', getenv( 'BBRT_TEST_TMP' ) . '/debug.log' );
define( 'AUTH_KEY', 'bbrt-tests' );
define( 'SECURE_AUTH_KEY', 'bbrt-tests' );
define( 'LOGGED_IN_KEY', 'bbrt-tests' );
define( 'NONCE_KEY', 'bbrt-tests' );
define( 'AUTH_SALT', 'bbrt-tests' );
define( 'SECURE_AUTH_SALT', 'bbrt-tests' );
define( 'LOGGED_IN_SALT', 'bbrt-tests' );
define( 'NONCE_SALT', 'bbrt-tests' );
// The browser test's site (run.sh with BBRT_TEST_SITE_CMD): the bbrt it connects to.
if ( getenv( 'BBRT_TEST_BBRT_URL' ) ) {
	define( 'BBRT_URL', getenv( 'BBRT_TEST_BBRT_URL' ) );
	define( 'BBRT_TICKET_KEYS', (string) getenv( 'BBRT_TEST_TICKET_KEYS' ) );
	define( 'BBRT_EVENT_KEYS', (string) getenv( 'BBRT_TEST_EVENT_KEYS' ) );
	// WP_HTTP_BLOCK_EXTERNAL would refuse the plugin's event POSTs to that bbrt.
	define( 'WP_ACCESSIBLE_HOSTS', (string) parse_url( getenv( 'BBRT_TEST_BBRT_URL' ), PHP_URL_HOST ) ); // phpcs:ignore Generic.PHP.ForbiddenFunctions.FoundWithAlternative -- WordPress is not loaded yet.
}
$table_prefix = 'wp_'; // phpcs:ignore WordPress.WP.GlobalVariablesOverride.Prohibited
