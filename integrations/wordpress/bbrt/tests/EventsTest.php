<?php
/**
 * Site events: each hook's event, the signature, and the sending (docs/wordpress.md,
 * "Site events").
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use Bbrt\Events;
use Bbrt\Settings;

/**
 * Hooks in process (BuddyBoss is stood in for, so its hooks are fired with the arguments
 * its source passes); the sending over HTTP, against a stand-in bbrt under `php -S`.
 */
final class EventsTest extends TestCase {

	const SECRET = 'eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee';

	/**
	 * The stand-in bbrt: [process, address, directory].
	 *
	 * @var array|null
	 */
	private static $listener = null;

	protected function setUp(): void {
		self::configure( 'http://' . self::listener() );
		delete_transient( Events::PAUSE_TRANSIENT );
		Events::take();
		array_map( 'unlink', glob( self::$listener[2] . '/*' ) );
	}

	protected function tearDown(): void {
		delete_option( Settings::OPTION );
		delete_option( 'bbrt_test_group_threads' );
		delete_transient( Events::PAUSE_TRANSIENT );
		Events::take();
	}

	/**
	 * Events on, sent to this bbrt.
	 *
	 * @param string $url  bbrt's URL.
	 * @param string $ring The event key ring.
	 */
	private static function configure( string $url, string $ring = 'e1:' . self::SECRET ): void {
		update_option(
			Settings::OPTION,
			array(
				'url'        => $url,
				'event_keys' => $ring,
			)
		);
	}

	/**
	 * Starts the stand-in bbrt (once).
	 */
	private static function listener(): string {
		if ( null !== self::$listener ) {
			return self::$listener[1];
		}
		$probe = stream_socket_server( 'tcp://127.0.0.1:0' );
		$name  = stream_socket_get_name( $probe, false );
		fclose( $probe );
		$dir = getenv( 'BBRT_TEST_TMP' ) . '/listener';
		mkdir( $dir );
		$process = proc_open(
			array( PHP_BINARY, '-S', $name, __DIR__ . '/bbrt-listener.php' ),
			array(
				0 => array( 'file', '/dev/null', 'r' ),
				1 => array( 'file', '/dev/null', 'a' ),
				2 => array( 'file', '/dev/null', 'a' ),
			),
			$pipes,
			__DIR__,
			array_merge( getenv(), array( 'BBRT_LISTENER_DIR' => $dir ) )
		);
		for ( $i = 0; $i < 100; $i++ ) {
			$socket = @stream_socket_client( 'tcp://' . $name, $errno, $errstr, 0.2 ); // phpcs:ignore Generic.PHP.NoSilencedErrors
			if ( $socket ) {
				fclose( $socket );
				break;
			}
			usleep( 50000 );
		}
		register_shutdown_function(
			static function () use ( $process ) {
				proc_terminate( $process );
				proc_close( $process );
			}
		);
		self::$listener = array( $process, $name, $dir );
		return $name;
	}

	/**
	 * The requests the stand-in bbrt received, waiting up to 10 s for the first.
	 */
	private static function received(): array {
		for ( $i = 0; $i < 200; $i++ ) {
			$files = glob( self::$listener[2] . '/*.json' );
			if ( $files ) {
				usleep( 50000 );
				sort( $files );
				return array_map(
					static function ( $file ) {
						return json_decode( (string) file_get_contents( $file ), true );
					},
					glob( self::$listener[2] . '/*.json' )
				);
			}
			usleep( 50000 );
		}
		return array();
	}

	/**
	 * The events recorded, by type => data.
	 */
	private static function taken(): array {
		$out = array();
		foreach ( Events::take() as $event ) {
			$out[] = array( $event['type'], $event['data'] );
		}
		return $out;
	}

	/**
	 * A new user, so that a thread with them is new (BuddyBoss appends a "new thread" to an
	 * existing one with the same members).
	 */
	private static function new_user(): int {
		$login = self::unique( 'erin' );
		return (int) wp_insert_user(
			array(
				'user_login' => $login,
				'user_pass'  => $login,
				'user_email' => $login . '@example.org',
			)
		);
	}

	/**
	 * A new thread from alice to bob and a third member.
	 *
	 * @param int $third The third member.
	 */
	private static function group_thread( int $third ): int {
		return (int) messages_new_message(
			array(
				'sender_id'  => self::uid( 'alice' ),
				'recipients' => array( self::uid( 'bob' ), $third ),
				'subject'    => 'three',
				'content'    => self::unique( 'hello' ),
			)
		);
	}

	public function test_no_event_without_a_key_ring(): void {
		self::configure( 'http://' . self::listener(), '' );
		self::group_thread( self::uid( 'carol' ) );
		$this->assertSame( array(), Events::take() );
	}

	public function test_message_sent_by_any_path_with_unread_counts(): void {
		list( $alice, $bob, $carol ) = array( self::uid( 'alice' ), self::uid( 'bob' ), self::new_user() );
		$thread                      = self::group_thread( $carol );
		$events                      = Events::take();
		$this->assertCount( 1, $events );
		$this->assertSame( 'message.sent', $events[0]['type'] );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{32}$/', $events[0]['id'] );
		$data = $events[0]['data'];
		$this->assertSame( array( 'thread_id', 'message_id', 'sender_id', 'new_thread', 'subject', 'message', 'date_sent', 'client_message_id', 'participants', 'unread' ), array_keys( $data ) );
		$this->assertSame( array( 'raw' => 'three', 'rendered' => 'three' ), $data['subject'] );
		$this->assertSame( $thread, $data['thread_id'] );
		$this->assertTrue( $data['new_thread'] );
		$this->assertSame( $alice, $data['sender_id'] );
		$this->assertNull( $data['client_message_id'] );
		$this->assertSame( array( $alice, $bob, $carol ), $data['participants'] );
		$this->assertSame( array( $bob, $carol ), array_column( $data['unread'], 'user_id' ) );
		$this->assertSame( array( 1, 1 ), array_column( $data['unread'], 'thread_unread' ) );
		$this->assertMatchesRegularExpression( '/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/', $data['date_sent'] );

		// A reply through bbrt's route: BuddyBoss's counts, and bbrt's key so it knows its own.
		$key      = self::unique( 'k' );
		$response = self::send( $bob, array( 'id' => $thread, 'message' => '<b>a</b> reply', 'client_message_id' => $key ) );
		$this->assertSame( 200, $response->get_status() );
		// Nothing is sent while the request runs: the event waits for the last shutdown hook.
		$this->assertSame( PHP_INT_MAX, has_action( 'shutdown', array( Events::class, 'send_queued' ) ) );
		list( $event ) = Events::take();
		$this->assertFalse( $event['data']['new_thread'] );
		$this->assertSame( array( 'raw' => 'a reply', 'rendered' => '<b>a</b> reply' ), $event['data']['message'], 'raw is plain text (the stand-in has no display filters)' );
		$this->assertSame( (int) $response->get_headers()['X-BBRT-Message-Id'], $event['data']['message_id'] );
		$this->assertSame( $key, $event['data']['client_message_id'] );
		$this->assertSame( array( $alice, $carol ), array_column( $event['data']['unread'], 'user_id' ) );
		$this->assertSame( array( 1, 2 ), array_column( $event['data']['unread'], 'thread_unread' ) );
		$this->assertSame( messages_get_unread_count( $carol ), $event['data']['unread'][1]['inbox_unread'] );
	}

	public function test_thread_hooks(): void {
		list( $alice, $bob, $carol ) = array( self::uid( 'alice' ), self::uid( 'bob' ), self::new_user() );
		$thread                      = self::group_thread( $carol );
		Events::take();

		do_action( 'messages_thread_mark_as_read', $thread, $bob, 1 );
		do_action( 'bp_messages_thread_messages_after_update', $thread, array( 7, 8, 9 ), $alice, array( 7, 9 ) );
		do_action( 'bp_messages_thread_messages_after_update', $thread, array( 7, 8, 9 ), $carol, array() );
		do_action( 'messages_delete_thread', array( $thread ), $carol );
		do_action( 'bp_messages_message_delete_thread', $thread, array( $bob => (object) array( 'user_id' => $bob ), $alice => (object) array( 'user_id' => $alice ) ) );
		$this->assertSame(
			array(
				array( 'thread.read', array( 'thread_id' => $thread, 'user_id' => $bob, 'participants' => array( $alice, $bob, $carol ), 'unread' => array( array( 'user_id' => $bob, 'thread_unread' => 1, 'inbox_unread' => messages_get_unread_count( $bob ) ) ) ) ),
				array( 'messages.deleted', array( 'thread_id' => $thread, 'user_id' => $alice, 'message_ids' => array( 7, 9 ), 'participants' => array( $alice, $bob, $carol ) ) ),
				array( 'thread.deleted_for_member', array( 'thread_id' => $thread, 'user_id' => $carol, 'unread' => array( array( 'user_id' => $carol, 'thread_unread' => 1, 'inbox_unread' => messages_get_unread_count( $carol ) ) ) ) ),
				array( 'thread.deleted', array( 'thread_id' => $thread, 'participants' => array( $alice, $bob ) ) ),
			),
			self::taken()
		);
	}

	public function test_group_participants_and_member_hooks(): void {
		list( $alice, $bob, $carol ) = array( self::uid( 'alice' ), self::uid( 'bob' ), self::new_user() );
		$thread                      = self::group_thread( $carol );
		update_option( 'bbrt_test_group_threads', array( 7 => $thread ) );
		Events::take();

		$added   = array( 'thread_id' => $thread, 'group_id' => 7, 'user_ids' => array( $carol ), 'participants' => array( $alice, $bob, $carol ) );
		$removed = array( 'participants.removed', $added );
		do_action( 'groups_join_group', 7, $carol );
		do_action( 'groups_accept_invite', $carol, 7, $alice );
		do_action( 'groups_membership_accepted', $carol, 7, true );
		do_action( 'groups_unban_member', 7, $carol );
		do_action( 'groups_leave_group', 7, $carol );
		do_action( 'groups_remove_member', 7, $carol );
		do_action( 'groups_ban_member', 7, $carol );
		do_action( 'groups_join_group', 8, $carol ); // A group without a message thread.
		do_action( 'bp_suspend_hide_user', $bob, 1, array( 'action' => 'suspended' ) );
		do_action( 'bp_suspend_unhide_user', $bob, 0, 0, array( 'action' => 'unsuspended' ) );
		$block = (object) array( 'item_type' => 'user', 'user_id' => $alice, 'item_id' => $bob );
		do_action_ref_array( 'bp_moderation_after_save', array( &$block ) );
		$report = (object) array( 'item_type' => 'user_report', 'user_id' => $alice, 'item_id' => $bob );
		do_action_ref_array( 'bp_moderation_after_save', array( &$report ) );
		do_action_ref_array( 'bb_moderation_after_delete', array( &$block ) );
		do_action( 'deleted_user', 12345, null, null );
		$this->assertSame(
			array(
				array( 'participants.added', $added ),
				array( 'participants.added', $added ),
				array( 'participants.added', $added ),
				array( 'participants.added', $added ),
				$removed,
				$removed,
				$removed,
				array( 'member.suspended', array( 'user_id' => $bob ) ),
				array( 'member.unsuspended', array( 'user_id' => $bob ) ),
				array( 'member.blocked', array( 'user_id' => $alice, 'blocked_user_id' => $bob ) ),
				array( 'member.unblocked', array( 'user_id' => $alice, 'blocked_user_id' => $bob ) ),
				array( 'member.deleted', array( 'user_id' => 12345 ) ),
			),
			self::taken()
		);
	}

	public function test_signature_covers_timestamp_event_id_and_exact_body(): void {
		$event   = array( 'id' => str_repeat( 'a', 32 ), 'type' => 'member.deleted', 'data' => array( 'user_id' => 5 ) );
		$body    = Events::body( $event, 1700000000 );
		$headers = Events::signed_headers( $body, $event['id'], 'e1', self::SECRET, 1700000000 );
		$this->assertSame( '{"id":"' . str_repeat( 'a', 32 ) . '","type":"member.deleted","site":"' . untrailingslashit( home_url() ) . '","occurred_at":1700000000,"data":{"user_id":5}}', $body );
		$this->assertSame(
			array(
				'Content-Type'     => 'application/json',
				'X-BBRT-Key-Id'    => 'e1',
				'X-BBRT-Timestamp' => '1700000000',
				'X-BBRT-Event-Id'  => str_repeat( 'a', 32 ),
				'X-BBRT-Signature' => 'v1=' . hash_hmac( 'sha256', "bbrt-event-v1\n1700000000\n" . str_repeat( 'a', 32 ) . "\n" . $body, self::SECRET ),
			),
			$headers
		);
	}

	public function test_a_send_over_http_reaches_bbrt_signed(): void {
		$key      = self::unique( 'k' );
		$response = self::http( 'POST', '/bbrt/v1/messages', 'alice', array( 'id' => self::alice_bob_thread(), 'message' => 'to bbrt', 'client_message_id' => $key ) );
		$this->assertSame( 200, $response['status'] );
		$received = self::received();
		$this->assertCount( 1, $received );
		$request = $received[0];
		$this->assertSame( 'POST', $request['method'] );
		$this->assertSame( '/site/events', $request['path'] );
		$body = json_decode( $request['body'], true );
		$this->assertSame( 'message.sent', $body['type'] );
		$this->assertSame( 'http://' . self::server(), $body['site'] );
		$this->assertSame( (int) $response['headers']['x-bbrt-message-id'], $body['data']['message_id'] );
		$this->assertSame( $key, $body['data']['client_message_id'] );
		$headers = $request['headers'];
		$this->assertSame( 'e1', $headers['x-bbrt-key-id'] );
		$this->assertSame( $body['id'], $headers['x-bbrt-event-id'] );
		$this->assertLessThanOrEqual( 5, abs( (int) $headers['x-bbrt-timestamp'] - time() ) );
		$signed = "bbrt-event-v1\n" . $headers['x-bbrt-timestamp'] . "\n" . $headers['x-bbrt-event-id'] . "\n" . $request['body'];
		$this->assertTrue( hash_equals( 'v1=' . hash_hmac( 'sha256', $signed, self::SECRET ), $headers['x-bbrt-signature'] ) );
	}

	public function test_silent_bbrt_costs_one_bounded_attempt_then_none(): void {
		// Accepts connections (the kernel's backlog) and never answers.
		$silent = stream_socket_server( 'tcp://127.0.0.1:0' );
		self::configure( 'http://' . stream_socket_get_name( $silent, false ) );
		$body = array( 'id' => self::alice_bob_thread(), 'message' => 'bbrt is silent', 'client_message_id' => self::unique( 'k' ) );

		$start    = microtime( true );
		$response = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Event-Timeout' => '0.5' ) );
		$elapsed  = microtime( true ) - $start;
		$this->assertSame( 200, $response['status'] );
		$this->assertLessThan( 0.5 + 5, $elapsed, 'the attempt is bounded by the timeout (php -S sends before closing)' );
		stream_set_blocking( $silent, false );
		$this->assertNotFalse( @stream_socket_accept( $silent, 0 ), 'the plugin did try' ); // phpcs:ignore Generic.PHP.NoSilencedErrors

		wp_cache_flush();
		$this->assertNotEmpty( get_transient( Events::PAUSE_TRANSIENT ), 'a failed POST pauses the reporter' );
		$body['client_message_id'] = self::unique( 'k' );
		$this->assertSame( 200, self::http( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Event-Timeout' => '0.5' ) )['status'] );
		$this->assertFalse( @stream_socket_accept( $silent, 0 ), 'paused: no further attempt' ); // phpcs:ignore Generic.PHP.NoSilencedErrors
		fclose( $silent );
	}

	public function test_refused_or_failing_bbrt_never_fails_the_request(): void {
		$probe = stream_socket_server( 'tcp://127.0.0.1:0' );
		$name  = stream_socket_get_name( $probe, false );
		fclose( $probe );
		self::configure( 'http://' . $name );
		$response = self::http( 'POST', '/bbrt/v1/messages', 'alice', array( 'id' => self::alice_bob_thread(), 'message' => 'bbrt is down', 'client_message_id' => self::unique( 'k' ) ) );
		$this->assertSame( 200, $response['status'] );
		wp_cache_flush();
		$this->assertNotEmpty( get_transient( Events::PAUSE_TRANSIENT ) );

		delete_transient( Events::PAUSE_TRANSIENT );
		self::configure( 'http://' . self::listener() );
		file_put_contents( self::$listener[2] . '/status', '503' );
		$response = self::http( 'POST', '/bbrt/v1/messages', 'alice', array( 'id' => self::alice_bob_thread(), 'message' => 'bbrt fails', 'client_message_id' => self::unique( 'k' ) ) );
		unlink( self::$listener[2] . '/status' );
		$this->assertSame( 200, $response['status'] );
		$this->assertCount( 1, self::received() );
		wp_cache_flush();
		$this->assertNotEmpty( get_transient( Events::PAUSE_TRANSIENT ), 'a 5xx pauses too' );
	}
}
