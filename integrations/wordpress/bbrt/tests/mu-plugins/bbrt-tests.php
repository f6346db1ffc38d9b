<?php
/**
 * Test site only: loads the BuddyBoss stand-in and the plugin under test, and the test
 * hooks that the HTTP tests drive through request headers.
 *
 * @package Bbrt\Tests
 */

// X-Bbrt-Test-No-BuddyBoss: this request runs on a site without BuddyBoss.
if ( empty( $_SERVER['HTTP_X_BBRT_TEST_NO_BUDDYBOSS'] ) ) {
	require_once dirname( __DIR__ ) . '/stubs/buddyboss.php';
}
// X-Bbrt-Test-No-App-Password-Fix: this request runs with the fix off.
if ( ! empty( $_SERVER['HTTP_X_BBRT_TEST_NO_APP_PASSWORD_FIX'] ) ) {
	define( 'BBRT_FEATURE_APP_PASSWORDS', false );
}

// X-Bbrt-Test-Resolve-User-Early: something asks for the current user before bbrt loads
// (a plugin loaded before bbrt that loads pluggable.php early to do so).
if ( ! empty( $_SERVER['HTTP_X_BBRT_TEST_RESOLVE_USER_EARLY'] ) ) {
	wp_cookie_constants(); // Defined for plugins; a mu-plugin runs before.
	require_once ABSPATH . WPINC . '/pluggable.php';
	wp_get_current_user();
}
require_once dirname( __DIR__, 2 ) . '/bbrt.php';

/*
 * X-Bbrt-Test-Hold: <dir> holds this request between "the key is ours" and the create:
 * it writes <dir>/holding, then waits (at most 20 s) for <dir>/release.
 */
add_action(
	'bbrt_before_create',
	static function () {
		$dir = isset( $_SERVER['HTTP_X_BBRT_TEST_HOLD'] ) ? (string) $_SERVER['HTTP_X_BBRT_TEST_HOLD'] : '';
		if ( '' === $dir || ! is_dir( $dir ) ) {
			return;
		}
		touch( $dir . '/holding' );
		$until = microtime( true ) + 20;
		while ( ! file_exists( $dir . '/release' ) && microtime( true ) < $until ) {
			usleep( 20000 );
		}
	}
);

// X-Bbrt-Test-Wait-Ms: how long this request waits for another creating the same key.
add_filter(
	'bbrt_in_progress_wait_ms',
	static function ( $wait_ms ) {
		return isset( $_SERVER['HTTP_X_BBRT_TEST_WAIT_MS'] ) ? (int) $_SERVER['HTTP_X_BBRT_TEST_WAIT_MS'] : $wait_ms;
	}
);

// X-Bbrt-Test-Exit-Before-Save: the site answers 503 and exits before storing (as a plugin
// that stops a send may), so the route's own code after the create never runs.
add_action(
	'messages_message_before_save',
	static function () {
		if ( empty( $_SERVER['HTTP_X_BBRT_TEST_EXIT_BEFORE_SAVE'] ) ) {
			return;
		}
		status_header( 503 );
		header( 'Content-Type: application/json; charset=UTF-8' );
		echo wp_json_encode( array( 'code' => 'test_exit', 'message' => 'exited before the store', 'data' => array( 'status' => 503 ) ) );
		exit;
	},
	PHP_INT_MIN
);

// X-Bbrt-Test-Event-Timeout: seconds one event POST may take (the silent-bbrt tests).
add_filter(
	'bbrt_event_timeout',
	static function ( $timeout ) {
		return isset( $_SERVER['HTTP_X_BBRT_TEST_EVENT_TIMEOUT'] ) ? (float) $_SERVER['HTTP_X_BBRT_TEST_EVENT_TIMEOUT'] : $timeout;
	}
);

/*
 * ?bbrt-test-page: the browser test's page on the site's origin. It gives its script what a
 * theme's page would: the member, a wp_rest nonce, the ticket route and bbrt's URL.
 */
add_action(
	'wp_loaded',
	static function () {
		if ( ! isset( $_GET['bbrt-test-page'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			return;
		}
		$config = array(
			'userId'    => get_current_user_id(),
			'nonce'     => wp_create_nonce( 'wp_rest' ),
			'ticketUrl' => rest_url( 'bbrt/v1/ticket' ),
			'bbrtUrl'   => untrailingslashit( (string) \Bbrt\Settings::get( 'url' ) ),
		);
		nocache_headers();
		header( 'Content-Type: text/html; charset=UTF-8' );
		echo '<!doctype html><title>bbrt ticket test</title><script id="bbrt-config" type="application/json">'
			. wp_json_encode( $config, JSON_HEX_TAG | JSON_UNESCAPED_SLASHES )
			. '</script>';
		exit;
	}
);

/*
 * BBRT_TEST_EVENTS_SENT (run.sh, for the browser test's site): each site-event request the
 * plugin sent, appended to that file as one JSON line (url, headers, body, status), so the
 * test can replay the exact signed bytes to show bbrt takes a duplicate once.
 */
add_action(
	'http_api_debug',
	static function ( $response, $context, $transport, $args, $url ) {
		$file = (string) getenv( 'BBRT_TEST_EVENTS_SENT' );
		if ( '' === $file || '/site/events' !== (string) wp_parse_url( $url, PHP_URL_PATH ) ) {
			return;
		}
		$line = array(
			'url'     => $url,
			'headers' => $args['headers'],
			'body'    => $args['body'],
			'status'  => is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response ),
		);
		file_put_contents( $file, wp_json_encode( $line, JSON_UNESCAPED_SLASHES ) . "\n", FILE_APPEND | LOCK_EX ); // phpcs:ignore WordPress.WP.AlternativeFunctions.file_system_operations_file_put_contents
	},
	10,
	5
);

/*
 * POST bbrt-test/v1/threads/<id>/read: the logged-in member reads a thread on the site (as
 * BuddyBoss's thread view does, through messages_mark_thread_read()), not through bbrt.
 */
add_action(
	'rest_api_init',
	static function () {
		register_rest_route(
			'bbrt-test/v1',
			'/threads/(?P<id>[\d]+)/read',
			array(
				'methods'             => 'POST',
				'permission_callback' => static function ( $request ) {
					return is_user_logged_in() && messages_check_thread_access( (int) $request['id'] );
				},
				'callback'            => static function ( $request ) {
					return array( 'changed' => (int) messages_mark_thread_read( (int) $request['id'] ) );
				},
			)
		);
	}
);

// The plugin's scripts are served by router.php: the plugin is outside the plugins directory.
add_filter(
	'plugins_url',
	static function ( $url, $path, $plugin ) {
		if ( \Bbrt\PLUGIN_FILE === $plugin && 0 === strpos( (string) $path, 'assets/js/' ) ) {
			return home_url( '/bbrt-test-assets/' . substr( (string) $path, strlen( 'assets/js/' ) ) );
		}
		return $url;
	},
	10,
	3
);

/*
 * ?bbrt-test-live=THREAD: a messages page as the live website script sees it, on the site's
 * origin: the plugin enqueues the script (bp_is_user_messages() is true here), and a
 * stand-in for BuddyBoss's messages app (bp.Nouveau.Messages, Backbone) records every
 * refresh the script asks for in window.bbrtTestCalls. The thread's typing indicator is
 * the Nouveau template's element.
 */
add_action(
	'wp_loaded',
	static function () {
		if ( ! isset( $_GET['bbrt-test-live'] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended
			return;
		}
		$thread                             = absint( $_GET['bbrt-test-live'] ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$GLOBALS['bbrt_test_messages_page'] = true;
		$names                              = array();
		foreach ( array( 'alice', 'bob', 'carol' ) as $login ) {
			$user = get_user_by( 'login', $login );
			// A name with markup: the page must show it as text.
			$names[ (string) $user->ID ] = array(
				'id'        => $user->ID,
				'user_name' => ucfirst( $login ) . ' <i>x</i>',
			);
		}
		nocache_headers();
		header( 'Content-Type: text/html; charset=UTF-8' );
		echo '<!doctype html><html><head><title>bbrt live website test</title>';
		wp_head();
		echo '</head><body>';
		printf(
			'<ul id="message-threads"><li><div class="thread-content" data-thread-id="%1$d"><div class="thread-subject"><div class="typing-indicator bp-hide"></div><span class="thread-excerpt">excerpt</span></div></div></li></ul>',
			(int) $thread
		);
		echo '<script id="bbrt-test-buddyboss">'
			. 'window.bbrtTestCalls = [];'
			. 'window.bbrtTestThread = ' . (int) $thread . ';'
			. 'window.bbrtTestRecipients = ' . wp_json_encode( $names ) . ';'
			. file_get_contents( dirname( __DIR__ ) . '/fixtures/live-website-stand-in.js' ) // phpcs:ignore WordPress.WP.AlternativeFunctions.file_get_contents_file_get_contents
			. '</script>';
		wp_footer();
		echo '</body></html>';
		exit;
	}
);
