<?php
/**
 * Uninstall leaves nothing of the plugin behind, and keeps the messages.
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use Bbrt\App_Passwords;
use Bbrt\Messages_Route;
use Bbrt\Send_Keys;
use Bbrt\Settings;

/**
 * uninstall.php, run in process, then the plugin activated again for the other tests.
 */
final class UninstallTest extends TestCase {

	public function test_uninstall_removes_the_table_options_schedule_and_meta(): void {
		global $wpdb;
		$text = self::unique( 'kept' );
		$sent = self::send( self::uid( 'alice' ), array( 'id' => self::alice_bob_thread(), 'message' => $text, 'client_message_id' => self::unique( 'k' ) ) );
		$id   = (int) $sent->get_headers()['X-BBRT-Message-Id'];
		update_option( Settings::OPTION, array( 'url' => 'https://rt.example' ) );
		Send_Keys::ensure_purge_scheduled();
		set_transient( \Bbrt\Events::PAUSE_TRANSIENT, 1, 60 );

		if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
			define( 'WP_UNINSTALL_PLUGIN', 'bbrt/bbrt.php' );
		}
		include dirname( __DIR__ ) . '/uninstall.php';
		wp_cache_flush();

		$this->assertNull( $wpdb->get_var( $wpdb->prepare( 'SHOW TABLES LIKE %s', Send_Keys::table() ) ) );
		foreach ( array( Settings::OPTION, Send_Keys::SCHEMA_OPTION, App_Passwords::TOO_LATE_OPTION ) as $option ) {
			$this->assertFalse( get_option( $option ), $option );
		}
		$this->assertFalse( wp_next_scheduled( Send_Keys::PURGE_HOOK ) );
		$this->assertFalse( get_transient( \Bbrt\Events::PAUSE_TRANSIENT ) );
		$this->assertNull( bp_messages_get_meta( $id, Messages_Route::META_KEY ) );
		$this->assertSame( 1, self::stored_count( $text ), 'the messages stay' );

		\Bbrt\activate();
	}
}
