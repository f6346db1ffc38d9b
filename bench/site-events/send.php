<?php
/**
 * The benchmark site's one extra page (bench/site-events.sh serves it through nginx and
 * PHP-FPM as /bbrt-bench-send): alice sends a message on the site's own path,
 * messages_new_message(), which fires messages_message_sent, the hook the plugin reports.
 * Answers {"thread_id", "message_id", "hook_at"}: hook_at is microtime(true) taken in that
 * hook just before the plugin's own callback (priority 99) records the event.
 *
 * The site is the plugin's test site (tests/wp-config.php, its BuddyBoss stand-in and its
 * users); this page only adds the event settings of the case being measured, from the
 * PHP-FPM pool's environment (BBRT_BENCH_NO_PAUSE: lift the reporter's pause first).
 *
 * @package Bbrt\Bench
 */

foreach ( array( 'BBRT_EVENTS_URL' => 'BBRT_BENCH_EVENTS_URL', 'BBRT_EVENT_KEYS' => 'BBRT_BENCH_EVENT_KEYS' ) as $bbrt_constant => $bbrt_env ) {
	if ( '' !== (string) getenv( $bbrt_env ) ) {
		define( $bbrt_constant, (string) getenv( $bbrt_env ) );
	}
}
require rtrim( (string) getenv( 'BBRT_TEST_WP' ), '/' ) . '/wp-config.php';

// The worst case: no pause after a failure, so every request tries bbrt.
if ( '' !== (string) getenv( 'BBRT_BENCH_NO_PAUSE' ) ) {
	delete_transient( \Bbrt\Events::PAUSE_TRANSIENT );
}

$bbrt_bench = array(
	'message_id' => 0,
	'hook_at'    => 0.0,
);
add_action(
	'messages_message_sent',
	static function ( $message ) use ( &$bbrt_bench ) {
		$bbrt_bench['hook_at']    = microtime( true );
		$bbrt_bench['message_id'] = (int) $message->id;
	},
	98
);

$bbrt_sender = get_user_by( 'login', 'alice' );
$bbrt_to     = get_user_by( 'login', 'bob' );
wp_set_current_user( $bbrt_sender->ID );
// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- a loopback benchmark page.
$bbrt_thread = isset( $_GET['thread'] ) ? (int) $_GET['thread'] : 0;
$bbrt_result = messages_new_message(
	array(
		'sender_id'  => $bbrt_sender->ID,
		'thread_id'  => $bbrt_thread,
		'recipients' => array( $bbrt_to->ID ),
		'subject'    => 'bench',
		'content'    => 'bench ' . microtime( true ),
	)
);
header( 'Content-Type: application/json' );
header( 'Cache-Control: no-store' );
if ( false === $bbrt_result ) {
	status_header( 500 );
	echo '{"error":"messages_new_message failed"}';
	exit;
}
echo wp_json_encode(
	array(
		'thread_id'  => (int) $bbrt_result,
		'message_id' => $bbrt_bench['message_id'],
		'hook_at'    => $bbrt_bench['hook_at'],
	)
);
