<?php
/**
 * Uninstall: removes the key table, the options, the schedule and the keys on messages.
 *
 * @package Bbrt
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

require_once __DIR__ . '/includes/class-settings.php';
require_once __DIR__ . '/includes/class-send-keys.php';
require_once __DIR__ . '/includes/class-messages-route.php';
require_once __DIR__ . '/includes/app-passwords.php';
require_once __DIR__ . '/includes/class-events.php';

\Bbrt\Send_Keys::deactivate();
\Bbrt\Send_Keys::drop();
delete_option( \Bbrt\Settings::OPTION );
delete_option( \Bbrt\App_Passwords::TOO_LATE_OPTION );
delete_transient( \Bbrt\Events::PAUSE_TRANSIENT );

global $wpdb;
$bbrt_meta_table = $wpdb->base_prefix . 'bp_messages_meta';
// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
if ( $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', $bbrt_meta_table ) ) === $bbrt_meta_table ) {
	$wpdb->delete( $bbrt_meta_table, array( 'meta_key' => \Bbrt\Messages_Route::META_KEY ), array( '%s' ) ); // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_key
}
