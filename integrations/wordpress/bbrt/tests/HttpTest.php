<?php
/**
 * The route over HTTP under `php -S` with workers: requests that really run at once, and
 * real authentication (Application Passwords).
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

/**
 * Concurrency decided by the key table, authentication, and a site without BuddyBoss.
 */
final class HttpTest extends TestCase {

	/**
	 * A directory for the hold handshake with tests/mu-plugins/bbrt-tests.php.
	 */
	private static function hold_dir(): string {
		$dir = getenv( 'BBRT_TEST_TMP' ) . '/' . self::unique( 'hold' );
		mkdir( $dir );
		return $dir;
	}

	/**
	 * Waits until the held request is between "the key is ours" and the create.
	 *
	 * @param string $dir The hold directory.
	 */
	private function await_holding( string $dir ): void {
		$until = microtime( true ) + 10;
		while ( ! file_exists( $dir . '/holding' ) && microtime( true ) < $until ) {
			usleep( 20000 );
		}
		$this->assertFileExists( $dir . '/holding', 'the first request reached the hold' );
	}

	public function test_a_second_request_while_the_first_creates_never_creates(): void {
		$body = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'concurrent' ), 'client_message_id' => self::unique( 'k' ) );
		$hold = self::hold_dir();

		$first = self::start( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Hold' => $hold ) );
		$this->await_holding( $hold );
		$second = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Wait-Ms' => '300' ) );
		touch( $hold . '/release' );
		$first = self::finish( $first );

		$this->assertSame( 1, self::stored_count( $body['message'] ), 'stored once' );
		$this->assertSame( 409, $second['status'], wp_json_encode( $second['body'] ) );
		$this->assertSame( 'bbrt_send_in_progress', $second['body']['code'] );
		$this->assertTrue( $second['body']['data']['retryable'] );
		$this->assertSame( '1', $second['headers']['retry-after'] );
		$this->assertSame( 200, $first['status'] );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );

		$third = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body );
		$this->assertSame( 200, $third['status'] );
		$this->assertSame( 'true', $third['headers']['x-bbrt-replayed'] );
		$this->assertSame( $first['headers']['x-bbrt-message-id'], $third['headers']['x-bbrt-message-id'] );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
	}

	public function test_a_second_request_waits_for_the_first_and_answers_its_message(): void {
		$body = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'waits' ), 'client_message_id' => self::unique( 'k' ) );
		$hold = self::hold_dir();

		$first = self::start( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Hold' => $hold ) );
		$this->await_holding( $hold );
		$second = self::start( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Wait-Ms' => '10000' ) );
		usleep( 300000 );
		touch( $hold . '/release' );
		$first  = self::finish( $first );
		$second = self::finish( $second );

		$this->assertSame( 1, self::stored_count( $body['message'] ), 'stored once' );
		$this->assertSame( 200, $first['status'] );
		$this->assertSame( 200, $second['status'], wp_json_encode( $second['body'] ) );
		$this->assertSame( 'true', $second['headers']['x-bbrt-replayed'] );
		$this->assertSame( $first['headers']['x-bbrt-message-id'], $second['headers']['x-bbrt-message-id'] );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
	}

	public function test_a_create_that_exits_before_storing_frees_its_key(): void {
		$body  = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'exits' ), 'client_message_id' => self::unique( 'k' ) );
		$first = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Exit-Before-Save' => '1' ) );
		$this->assertSame( 503, $first['status'] );
		$this->assertSame( 0, self::stored_count( $body['message'] ) );

		$retry = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Wait-Ms' => '100' ) );
		$this->assertSame( 200, $retry['status'], 'not "in progress" until the row goes stale: ' . wp_json_encode( $retry['body'] ) );
		$this->assertSame( 'false', $retry['headers']['x-bbrt-replayed'] );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
	}

	public function test_authentication_is_the_sites(): void {
		$body = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'auth' ), 'client_message_id' => self::unique( 'k' ) );

		$anonymous = self::http( 'POST', '/bbrt/v1/messages', null, $body );
		$this->assertSame( 401, $anonymous['status'] );
		$this->assertSame( 'bp_rest_authorization_required', $anonymous['body']['code'] );

		$wrong = self::http( 'POST', '/bbrt/v1/messages', base64_encode( 'alice:aaaa bbbb cccc dddd eeee ffff' ), $body );
		$this->assertSame( 401, $wrong['status'] );
		$this->assertSame( 'incorrect_password', $wrong['body']['code'] );
		$this->assertSame( 0, self::stored_count( $body['message'] ) );

		$alice = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body );
		$this->assertSame( 200, $alice['status'] );
		$this->assertSame( self::uid( 'alice' ), $alice['body']['current_user'], 'the Application Password user is BuddyBoss\'s current user' );
		$this->assertSame( 1, self::stored_count( $body['message'] ) );
	}

	public function test_without_the_fix_buddyboss_sees_nobody(): void {
		$reply = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'no fix' ) );
		$off   = array( 'X-Bbrt-Test-No-App-Password-Fix' => '1' );
		$plain = self::http( 'POST', '/buddyboss/v1/messages', 'alice', $reply, $off );
		$this->assertSame( 403, $plain['status'], 'as on the real site: ' . wp_json_encode( $plain['body'] ) );
		$this->assertSame( 'bp_rest_authorization_required', $plain['body']['code'] );
		$this->assertSame( 200, self::http( 'POST', '/buddyboss/v1/messages', 'alice', $reply )['status'], 'with the fix' );
	}

	public function test_a_fix_that_loads_too_late_is_recorded_for_the_admin(): void {
		$body = array( 'id' => self::alice_bob_thread(), 'message' => self::unique( 'early' ), 'client_message_id' => self::unique( 'k' ) );
		$late = self::http( 'POST', '/bbrt/v1/messages', 'alice', $body, array( 'X-Bbrt-Test-Resolve-User-Early' => '1' ) );
		$this->assertSame( 200, $late['status'], 'the route sends as the WordPress user' );
		$this->assertSame( 0, $late['body']['current_user'], 'but BuddyBoss cached nobody' );
		wp_cache_delete( 'alloptions', 'options' );
		$this->assertNotEmpty( get_option( \Bbrt\App_Passwords::TOO_LATE_OPTION ) );
		wp_set_current_user( 1 );
		ob_start();
		\Bbrt\Admin::notices();
		$notice = (string) ob_get_clean();
		wp_set_current_user( 0 );
		$this->assertStringContainsString( 'mu-plugin/bbrt-app-passwords.php', $notice );

		$body['client_message_id'] = self::unique( 'k' );
		$this->assertSame( self::uid( 'alice' ), self::http( 'POST', '/bbrt/v1/messages', 'alice', $body )['body']['current_user'] );
		wp_cache_delete( 'alloptions', 'options' );
		$this->assertEmpty( get_option( \Bbrt\App_Passwords::TOO_LATE_OPTION ), 'cleared once the fix is early enough' );
	}

	public function test_without_buddyboss_the_plugin_registers_nothing(): void {
		$index = self::http( 'GET', '/', null, null, array( 'X-Bbrt-Test-No-BuddyBoss' => '1' ) );
		$this->assertSame( 200, $index['status'] );
		$this->assertNotContains( 'bbrt/v1', $index['body']['namespaces'] );
		$send = self::http( 'POST', '/bbrt/v1/messages', 'alice', array( 'message' => 'x', 'client_message_id' => 'k' ), array( 'X-Bbrt-Test-No-BuddyBoss' => '1' ) );
		$this->assertSame( 404, $send['status'] );
		$this->assertSame( 'rest_no_route', $send['body']['code'] );

		$with = self::http( 'GET', '/', null );
		$this->assertContains( 'bbrt/v1', $with['body']['namespaces'], 'bbrt detects the plugin from this list' );
	}
}
