<?php
/**
 * The send route in process (rest_do_request).
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use Bbrt\Messages_Route;
use Bbrt\Send_Keys;
use Bbrt\Settings;

/**
 * Exactly-once sends, identity, access, conflicts, in-progress, stale rows and the purge.
 */
final class SendRouteTest extends TestCase {

	protected function tearDown(): void {
		remove_all_actions( 'bbrt_before_create' );
		remove_all_filters( 'bbrt_in_progress_wait_ms' );
		remove_all_filters( 'bbrt_pending_stale_seconds' );
	}

	/**
	 * The route's parameter hash, for rows a test writes itself.
	 *
	 * @param array $params BuddyBoss's parameters.
	 */
	private static function fingerprint( array $params ): string {
		$method = new \ReflectionMethod( Messages_Route::class, 'fingerprint' );
		$method->setAccessible( true );
		return $method->invoke( null, $params );
	}

	public function test_a_retry_answers_the_stored_message_and_stores_nothing(): void {
		$thread = self::alice_bob_thread();
		$text   = self::unique( 'hello' );
		$key    = self::unique( 'k' );
		$body   = array( 'id' => $thread, 'message' => $text, 'client_message_id' => $key );

		$first = self::send( self::uid( 'alice' ), $body );
		$this->assertSame( 200, $first->get_status() );
		$this->assertSame( 'false', $first->get_headers()['X-BBRT-Replayed'] );
		$id = (int) $first->get_headers()['X-BBRT-Message-Id'];
		$this->assertGreaterThan( 0, $id );
		$this->assertSame( $id, $first->get_data()['message_id'] );

		$retry = self::send( self::uid( 'alice' ), $body );
		$this->assertSame( 200, $retry->get_status() );
		$this->assertSame( 'true', $retry->get_headers()['X-BBRT-Replayed'] );
		$this->assertSame( (string) $id, $retry->get_headers()['X-BBRT-Message-Id'] );
		$this->assertSame( $thread, $retry->get_data()['id'] );
		$this->assertSame( $id, end( $retry->get_data()['messages'] )['id'], 'the page ends at the stored message' );
		$this->assertSame( array_keys( $first->get_data() ), array_keys( $retry->get_data() ), 'one shape' );
		$this->assertSame( 1, self::stored_count( $text ) );
		$this->assertSame( $key, bp_messages_get_meta( $id, Messages_Route::META_KEY ) );
	}

	public function test_a_new_thread_is_stored_once(): void {
		$text = self::unique( 'new thread' );
		$body = array( 'recipients' => array( self::uid( 'carol' ) ), 'message' => $text, 'client_message_id' => self::unique( 'k' ) );
		$this->assertSame( 200, self::send( self::uid( 'bob' ), $body )->get_status() );
		$retry = self::send( self::uid( 'bob' ), $body );
		$this->assertSame( 'true', $retry->get_headers()['X-BBRT-Replayed'] );
		$this->assertSame( 1, self::stored_count( $text ) );
	}

	public function test_an_anonymous_caller_is_refused(): void {
		$text     = self::unique( 'anon' );
		$response = self::send( 0, array( 'id' => self::alice_bob_thread(), 'message' => $text, 'client_message_id' => self::unique( 'k' ) ) );
		$this->assertSame( 401, $response->get_status() );
		$this->assertSame( 'bp_rest_authorization_required', self::code( $response ) );
		$this->assertSame( 0, self::stored_count( $text ) );
	}

	public function test_sender_id_is_refused_even_the_callers_own(): void {
		foreach ( array( self::uid( 'bob' ), self::uid( 'alice' ) ) as $sender_id ) {
			$text     = self::unique( 'as bob' );
			$response = self::send(
				self::uid( 'alice' ),
				array( 'id' => self::alice_bob_thread(), 'message' => $text, 'sender_id' => $sender_id, 'client_message_id' => self::unique( 'k' ) )
			);
			$this->assertSame( 400, $response->get_status() );
			$this->assertSame( 'rest_invalid_param', self::code( $response ) );
			$this->assertArrayHasKey( 'sender_id', $response->get_data()['data']['params'] );
			$this->assertSame( 0, self::stored_count( $text ) );
		}
	}

	public function test_a_missing_or_malformed_key_is_refused(): void {
		$base = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'nokey' ) );
		$this->assertSame( 'rest_missing_callback_param', self::code( self::send( self::uid( 'alice' ), $base ) ) );
		foreach ( array( '', 'has space', str_repeat( 'a', 129 ), 'é' ) as $bad ) {
			$response = self::send( self::uid( 'alice' ), $base + array( 'client_message_id' => $bad ) );
			$this->assertSame( 400, $response->get_status(), $bad );
		}
		$this->assertSame( 0, self::stored_count( $base['message'] ) );
	}

	public function test_thread_access_is_checked_for_the_caller(): void {
		$text     = self::unique( 'intruder' );
		$key      = self::unique( 'k' );
		$response = self::send( self::uid( 'carol' ), array( 'id' => self::alice_bob_thread(), 'message' => $text, 'client_message_id' => $key ) );
		$this->assertSame( 403, $response->get_status() );
		$this->assertSame( 'bp_rest_authorization_required', self::code( $response ) );
		$this->assertSame( 0, self::stored_count( $text ) );
		$this->assertNull( Send_Keys::find( self::uid( 'carol' ), $key ), 'a refused request claims no key' );
	}

	public function test_another_users_key_is_never_answered(): void {
		$thread = self::alice_bob_thread();
		$key    = self::unique( 'shared' );
		$text   = self::unique( 'same text' );
		$alice  = self::send( self::uid( 'alice' ), array( 'id' => $thread, 'message' => $text, 'client_message_id' => $key ) );
		$alice_id = (int) $alice->get_headers()['X-BBRT-Message-Id'];

		$bob = self::send( self::uid( 'bob' ), array( 'id' => $thread, 'message' => $text, 'client_message_id' => $key ) );
		$this->assertSame( 200, $bob->get_status() );
		$this->assertSame( 'false', $bob->get_headers()['X-BBRT-Replayed'], 'bob\'s own message, not alice\'s' );
		$this->assertNotSame( $alice_id, (int) $bob->get_headers()['X-BBRT-Message-Id'] );
		$this->assertSame( self::uid( 'bob' ), $bob->get_data()['last_sender_id'] );

		$carol = self::send( self::uid( 'carol' ), array( 'id' => $thread, 'message' => $text, 'client_message_id' => $key ) );
		$this->assertSame( 403, $carol->get_status(), 'carol never sees alice\'s thread through alice\'s key' );
		$this->assertSame( 2, self::stored_count( $text ) );
	}

	public function test_the_same_key_with_other_parameters_conflicts(): void {
		$thread = self::alice_bob_thread();
		$key    = self::unique( 'k' );
		$text   = self::unique( 'first' );
		self::send( self::uid( 'alice' ), array( 'id' => $thread, 'message' => $text, 'client_message_id' => $key ) );
		$other_text   = self::send( self::uid( 'alice' ), array( 'id' => $thread, 'message' => $text . ' edited', 'client_message_id' => $key ) );
		$other_thread = self::send( self::uid( 'alice' ), array( 'recipients' => array( self::uid( 'carol' ) ), 'message' => $text, 'client_message_id' => $key ) );
		foreach ( array( $other_text, $other_thread ) as $response ) {
			$this->assertSame( 409, $response->get_status() );
			$this->assertSame( 'idempotency_conflict', self::code( $response ) );
		}
		$this->assertSame( 1, self::stored_count( $text ) );
		$this->assertSame( 0, self::stored_count( $text . ' edited' ) );
	}

	public function test_a_key_still_being_created_answers_in_progress_and_never_creates(): void {
		$body = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'pending' ), 'client_message_id' => self::unique( 'k' ) );
		add_filter( 'bbrt_in_progress_wait_ms', static fn() => 100 );
		$during = array();
		add_action(
			'bbrt_before_create',
			static function () use ( $body, &$during ) {
				remove_all_actions( 'bbrt_before_create' );
				// A second request arrives while the first owns the key, before its create.
				$during[] = self::send( self::uid( 'alice' ), $body );
				$during[] = self::send( self::uid( 'alice' ), array( 'message' => 'other' ) + $body );
				wp_set_current_user( self::uid( 'alice' ) );
			}
		);
		$first = self::send( self::uid( 'alice' ), $body );
		$this->assertSame( 200, $first->get_status() );
		$this->assertSame( 409, $during[0]->get_status() );
		$this->assertSame( 'bbrt_send_in_progress', self::code( $during[0] ) );
		$this->assertTrue( $during[0]->get_data()['data']['retryable'] );
		$this->assertSame( '1', $during[0]->get_headers()['Retry-After'] );
		$this->assertSame( 'idempotency_conflict', self::code( $during[1] ), 'a conflict is told at once, even while pending' );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
	}

	public function test_a_failed_create_is_buddyboss_error_and_frees_the_key(): void {
		$key   = self::unique( 'k' );
		$empty = self::send( self::uid( 'alice' ), array( 'id' => self::alice_bob_thread(), 'message' => '', 'client_message_id' => $key ) );
		$this->assertSame( 400, $empty->get_status() );
		$this->assertSame( 'bp_rest_messages_empty_message', self::code( $empty ) );
		$this->assertNull( Send_Keys::find( self::uid( 'alice' ), $key ) );

		$unknown = self::send( self::uid( 'alice' ), array( 'recipients' => array( 999999 ), 'message' => 'x', 'client_message_id' => $key ) );
		$this->assertSame( 500, $unknown->get_status() );
		$this->assertSame( 'bp_rest_messages_create_failed', self::code( $unknown ) );

		$text = self::unique( 'now valid' );
		$this->assertSame( 200, self::send( self::uid( 'alice' ), array( 'id' => self::alice_bob_thread(), 'message' => $text, 'client_message_id' => $key ) )->get_status() );
		$this->assertSame( 1, self::stored_count( $text ) );
	}

	public function test_a_message_stored_before_buddyboss_fails_is_answered_as_stored(): void {
		$body  = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'stored then 500' ), 'client_message_id' => self::unique( 'k' ) );
		$fails = static function ( $response, $handler, $request ) {
			return '/buddyboss/v1/messages' === $request->get_route() && 'POST' === $request->get_method()
				? new \WP_Error( 'something_after_the_save', 'A hook after the save failed.', array( 'status' => 500 ) )
				: $response;
		};
		add_filter( 'rest_request_after_callbacks', $fails, 10, 3 );
		$response = self::send( self::uid( 'alice' ), $body );
		remove_filter( 'rest_request_after_callbacks', $fails, 10 );

		$this->assertSame( 200, $response->get_status(), wp_json_encode( $response->get_data() ) );
		$this->assertSame( 'false', $response->get_headers()['X-BBRT-Replayed'] );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
		$this->assertSame( 'true', self::send( self::uid( 'alice' ), $body )->get_headers()['X-BBRT-Replayed'] );
	}

	public function test_a_stale_pending_row_is_resolved_from_the_thread(): void {
		$thread = self::alice_bob_thread();
		$alice  = self::uid( 'alice' );
		// Its creator stored the message (key on it) and died before completing the row.
		$text   = self::unique( 'died after save' );
		$key    = self::unique( 'k' );
		$params = array( 'id' => $thread, 'message' => $text );
		$this->assertTrue( Send_Keys::claim( $alice, $key, self::fingerprint( $params ), 'dead-owner-1' ) );
		messages_new_message( array( 'sender_id' => $alice, 'thread_id' => $thread, 'content' => $text ) );
		$stored_id = (int) $GLOBALS['wpdb']->get_var( 'SELECT MAX(id) FROM ' . buddypress()->messages->table_name_messages );
		bp_messages_update_meta( $stored_id, Messages_Route::META_KEY, $key );
		add_filter( 'bbrt_pending_stale_seconds', static fn() => 0 );

		$response = self::send( $alice, $params + array( 'client_message_id' => $key ) );
		$this->assertSame( 200, $response->get_status() );
		$this->assertSame( (string) $stored_id, $response->get_headers()['X-BBRT-Message-Id'] );
		$this->assertSame( 'true', $response->get_headers()['X-BBRT-Replayed'] );
		$this->assertSame( 1, self::stored_count( $text ) );
		$this->assertSame( Send_Keys::STATE_COMPLETE, Send_Keys::find( $alice, $key )->state );

		// Its creator died before storing anything: this request takes the row over.
		$text   = self::unique( 'died before save' );
		$key    = self::unique( 'k' );
		$params = array( 'id' => $thread, 'message' => $text );
		$this->assertTrue( Send_Keys::claim( $alice, $key, self::fingerprint( $params ), 'dead-owner-2' ) );
		$response = self::send( $alice, $params + array( 'client_message_id' => $key ) );
		$this->assertSame( 200, $response->get_status() );
		$this->assertSame( 'false', $response->get_headers()['X-BBRT-Replayed'] );
		$this->assertSame( 1, self::stored_count( $text ) );
	}

	public function test_a_request_whose_row_was_taken_over_does_not_create(): void {
		$alice = self::uid( 'alice' );
		$body  = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'slow owner' ), 'client_message_id' => self::unique( 'k' ) );
		add_action(
			'bbrt_before_create',
			static function () use ( $alice, $body ) {
				// While this request was stuck, its row went stale and another took it over.
				$row = Send_Keys::find( $alice, $body['client_message_id'] );
				Send_Keys::take_over( $row, 'the-new-owner' );
			}
		);
		$response = self::send( $alice, $body );
		$this->assertSame( 409, $response->get_status() );
		$this->assertSame( 'bbrt_send_in_progress', self::code( $response ) );
		$this->assertSame( 0, self::stored_count( $body['message'] ) );
		$this->assertSame( 'the-new-owner', Send_Keys::find( $alice, $body['client_message_id'] )->owner, 'the new owner keeps its row' );
	}

	public function test_a_retry_rechecks_access_to_the_thread(): void {
		global $wpdb;
		$thread = (int) messages_new_message( array( 'sender_id' => self::uid( 'bob' ), 'recipients' => array( self::uid( 'carol' ) ), 'content' => 'bob and carol' ) );
		$body   = array( 'id' => $thread, 'message' => self::unique( 'then left' ), 'client_message_id' => self::unique( 'k' ) );
		$this->assertSame( 200, self::send( self::uid( 'carol' ), $body )->get_status() );
		$wpdb->update( buddypress()->messages->table_name_recipients, array( 'is_deleted' => 1 ), array( 'thread_id' => $thread, 'user_id' => self::uid( 'carol' ) ) );
		$retry = self::send( self::uid( 'carol' ), $body );
		$this->assertSame( 403, $retry->get_status() );
		$this->assertSame( 'bp_rest_authorization_required', self::code( $retry ) );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
	}

	public function test_old_keys_are_purged_after_the_retention(): void {
		global $wpdb;
		$alice = self::uid( 'alice' );
		$old   = self::unique( 'old' );
		$fresh = self::unique( 'fresh' );
		Send_Keys::claim( $alice, $old, str_repeat( 'a', 64 ), 'o1' );
		Send_Keys::claim( $alice, $fresh, str_repeat( 'a', 64 ), 'o2' );
		$days = (int) Settings::get( 'key_retention_days' );
		$this->assertSame( 7, $days, 'the documented default' );
		$wpdb->update( Send_Keys::table(), array( 'created_at' => time() - $days * DAY_IN_SECONDS - 10 ), array( 'client_key' => $old ) );

		$this->assertGreaterThanOrEqual( 1, Send_Keys::purge() );
		$this->assertNull( Send_Keys::find( $alice, $old ) );
		$this->assertNotNull( Send_Keys::find( $alice, $fresh ) );

		Send_Keys::ensure_purge_scheduled();
		$this->assertNotFalse( wp_next_scheduled( Send_Keys::PURGE_HOOK ), 'a daily WP-cron event' );
		$this->assertTrue( has_action( Send_Keys::PURGE_HOOK ) > 0 );
	}
}
