<?php
/**
 * POST /bbrt/v1/ticket and the site credential it carries (docs/wordpress.md, "Connection
 * tickets").
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use Bbrt\Keyring;
use Bbrt\Settings;
use Bbrt\Site_Credential;
use WP_Session_Tokens;

/**
 * Over HTTP, because cookie authentication and the nonce check run only in a real request.
 */
final class TicketTest extends TestCase {

	const KEY_1 = 'k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
	const KEY_2 = 'k2:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';

	protected function setUp(): void {
		self::configure( self::KEY_1 );
	}

	protected function tearDown(): void {
		delete_option( Settings::OPTION );
	}

	/**
	 * The settings the test site reads (the `php -S` workers read the same database).
	 *
	 * @param string $ring The ticket key ring.
	 */
	private static function configure( string $ring ): void {
		update_option(
			Settings::OPTION,
			array(
				'url'         => 'https://rt.example.org/',
				'ticket_keys' => $ring,
			)
		);
	}

	/**
	 * Logs a user in as a browser would: a login session, its cookie and a wp_rest nonce.
	 *
	 * @param int $user_id The user.
	 * @return array{token: string, headers: array<string, string>}
	 */
	private static function browser_login( int $user_id ): array {
		$expires = time() + 2 * DAY_IN_SECONDS;
		$token   = WP_Session_Tokens::get_instance( $user_id )->create( $expires );
		$cookie  = wp_generate_auth_cookie( $user_id, $expires, 'logged_in', $token );
		// The nonce is bound to the session token, which WordPress reads from the cookie.
		$_COOKIE[ LOGGED_IN_COOKIE ] = $cookie;
		wp_set_current_user( $user_id );
		$nonce = wp_create_nonce( 'wp_rest' );
		unset( $_COOKIE[ LOGGED_IN_COOKIE ] );
		wp_set_current_user( 0 );
		// The test site's cookie name hashes its own URL (php -S's address).
		$name = 'wordpress_logged_in_' . md5( 'http://' . self::server() );
		return array(
			'token'   => $token,
			'headers' => array(
				'Cookie'     => $name . '=' . rawurlencode( $cookie ),
				'X-WP-Nonce' => $nonce,
			),
		);
	}

	/**
	 * A user of this test alone, for the changes that end all of a user's sessions.
	 */
	private static function new_user(): int {
		$login = self::unique( 'dave' );
		return (int) wp_insert_user(
			array(
				'user_login' => $login,
				'user_pass'  => $login,
				'user_email' => $login . '@example.org',
				'role'       => 'subscriber',
			)
		);
	}

	/**
	 * A ticket's three parts, decoded.
	 *
	 * @param string $ticket The JWT.
	 * @return array{input: string, header: string, claims: array, signature: string}
	 */
	private static function decode( string $ticket ): array {
		$parts = explode( '.', $ticket );
		self::assertCount( 3, $parts );
		return array(
			'input'     => $parts[0] . '.' . $parts[1],
			'header'    => (string) Keyring::base64url_decode( $parts[0] ),
			'claims'    => json_decode( (string) Keyring::base64url_decode( $parts[1] ), true ),
			'signature' => (string) Keyring::base64url_decode( $parts[2] ),
		);
	}

	/**
	 * GET users/me with a site credential.
	 *
	 * @param string $credential The X-BBRT-Session value.
	 */
	private static function me( string $credential ): array {
		return self::http( 'GET', '/wp/v2/users/me', null, null, array( Site_Credential::HEADER => $credential ) );
	}

	public function test_logged_out_is_401_and_no_store(): void {
		$response = self::http( 'POST', '/bbrt/v1/ticket', null );
		$this->assertSame( 401, $response['status'] );
		$this->assertSame( 'bbrt_ticket_login_required', $response['body']['code'] );
		$this->assertSame( 'no-store', $response['headers']['cache-control'] ?? null );
	}

	public function test_bad_nonce_is_403_and_no_store(): void {
		$login                            = self::browser_login( self::uid( 'alice' ) );
		$login['headers']['X-WP-Nonce'] = 'not-a-nonce';
		$response                         = self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] );
		$this->assertSame( 403, $response['status'] );
		$this->assertSame( 'rest_cookie_invalid_nonce', $response['body']['code'] );
		$this->assertSame( 'no-store', $response['headers']['cache-control'] ?? null );
	}

	public function test_cookie_without_nonce_is_401(): void {
		$login = self::browser_login( self::uid( 'alice' ) );
		unset( $login['headers']['X-WP-Nonce'] );
		$this->assertSame( 401, self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] )['status'] );
	}

	public function test_application_password_and_site_credential_get_no_ticket(): void {
		$response = self::http( 'POST', '/bbrt/v1/ticket', 'alice' );
		$this->assertSame( 401, $response['status'], 'an Application Password has no login session' );
		$this->assertSame( 'bbrt_ticket_login_required', $response['body']['code'] );

		$login    = self::browser_login( self::uid( 'alice' ) );
		$ticket   = self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] )['body']['ticket'];
		$response = self::http( 'POST', '/bbrt/v1/ticket', null, null, array( Site_Credential::HEADER => self::decode( $ticket )['claims']['sc'] ) );
		$this->assertSame( 401, $response['status'], 'bbrt cannot mint tickets with what it holds' );
	}

	public function test_ticket_is_signed_and_carries_every_field(): void {
		$login    = self::browser_login( self::uid( 'alice' ) );
		$before   = time();
		$response = self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] );
		$this->assertSame( 200, $response['status'], wp_json_encode( $response['body'] ) );
		$this->assertSame( 'no-store', $response['headers']['cache-control'] ?? null );
		$this->assertSame( array( 'ticket', 'expires_at' ), array_keys( $response['body'] ) );

		$ticket = self::decode( $response['body']['ticket'] );
		$this->assertSame( '{"alg":"HS256","kid":"k1","typ":"bbrt-ticket"}', $ticket['header'] );
		$this->assertTrue( hash_equals( hash_hmac( 'sha256', $ticket['input'], str_repeat( 'a', 32 ), true ), $ticket['signature'] ) );

		$claims = $ticket['claims'];
		$this->assertSame( array( 'iss', 'aud', 'sub', 'iat', 'nbf', 'exp', 'jti', 'sc' ), array_keys( $claims ) );
		$this->assertSame( 'http://' . self::server(), $claims['iss'] );
		$this->assertSame( 'https://rt.example.org', $claims['aud'] );
		$this->assertSame( (string) self::uid( 'alice' ), $claims['sub'] );
		$this->assertGreaterThanOrEqual( $before, $claims['iat'] );
		$this->assertSame( $claims['iat'], $claims['nbf'] );
		$this->assertSame( 30, $claims['exp'] - $claims['iat'] );
		$this->assertSame( $claims['exp'], $response['body']['expires_at'] );
		$this->assertMatchesRegularExpression( '/^[0-9a-f]{32}$/', $claims['jti'] );
		$this->assertMatchesRegularExpression( '/^bbrt-sc1\.[0-9a-f]{16}\.[A-Za-z0-9_-]+$/', $claims['sc'] );
		$this->assertLessThanOrEqual( Site_Credential::MAX_BYTES, strlen( $claims['sc'] ) );

		$again = self::decode( self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] )['body']['ticket'] );
		$this->assertNotSame( $claims['jti'], $again['claims']['jti'], 'every ticket has its own id' );
	}

	public function test_rotation_signs_with_the_first_key_of_the_ring(): void {
		self::configure( self::KEY_2 . ',' . self::KEY_1 );
		$login  = self::browser_login( self::uid( 'alice' ) );
		$ticket = self::decode( self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] )['body']['ticket'] );
		$this->assertSame( '{"alg":"HS256","kid":"k2","typ":"bbrt-ticket"}', $ticket['header'] );
		$this->assertTrue( hash_equals( hash_hmac( 'sha256', $ticket['input'], str_repeat( 'b', 32 ), true ), $ticket['signature'] ) );
		$this->assertFalse( hash_equals( hash_hmac( 'sha256', $ticket['input'], str_repeat( 'a', 32 ), true ), $ticket['signature'] ) );
	}

	public function test_unset_or_malformed_ring_is_503(): void {
		foreach ( array( '', 'k1:short', 'k1:' . str_repeat( 'a', 32 ) . ',bad kid:' . str_repeat( 'a', 32 ) ) as $ring ) {
			self::configure( $ring );
			$login    = self::browser_login( self::uid( 'alice' ) );
			$response = self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] );
			$this->assertSame( 503, $response['status'], $ring );
			$this->assertSame( 'bbrt_tickets_not_configured', $response['body']['code'] );
		}
	}

	public function test_site_credential_acts_for_the_member_until_logout(): void {
		$login      = self::browser_login( self::uid( 'alice' ) );
		$credential = self::decode( self::http( 'POST', '/bbrt/v1/ticket', null, null, $login['headers'] )['body']['ticket'] )['claims']['sc'];

		$me = self::me( $credential );
		$this->assertSame( 200, $me['status'], wp_json_encode( $me['body'] ) );
		$this->assertSame( self::uid( 'alice' ), $me['body']['id'] );

		// A send as alice: resolved before BuddyBoss caches the current user on `init`.
		$text = self::unique( 'by credential' );
		$sent = self::http( 'POST', '/bbrt/v1/messages', null, array( 'id' => self::alice_bob_thread(), 'message' => $text, 'client_message_id' => self::unique( 'k' ) ), array( Site_Credential::HEADER => $credential ) );
		$this->assertSame( 200, $sent['status'], wp_json_encode( $sent['body'] ) );
		$this->assertSame( self::uid( 'alice' ), $sent['body']['current_user'] );
		$this->assertSame( 1, self::stored_count( $text ) );

		// Logging out on the site destroys the session the credential is bound to.
		WP_Session_Tokens::get_instance( self::uid( 'alice' ) )->destroy( $login['token'] );
		$me = self::me( $credential );
		$this->assertSame( 401, $me['status'] );
		$this->assertSame( 'bbrt_session_invalid', $me['body']['code'] );
		$this->assertSame( 'session ended', $me['body']['data']['reason'] );
	}

	public function test_site_credential_refused_when_tampered_or_expired(): void {
		$user_id    = self::uid( 'bob' );
		$token      = WP_Session_Tokens::get_instance( $user_id )->create( time() + HOUR_IN_SECONDS );
		$credential = Site_Credential::issue( $user_id, $token, time() + HOUR_IN_SECONDS );
		$this->assertSame( $user_id, Site_Credential::authenticate( $credential ) );

		$parts    = explode( '.', $credential );
		$middle   = intdiv( strlen( $parts[2] ), 2 );
		$parts[2] = substr_replace( $parts[2], 'A' === $parts[2][ $middle ] ? 'B' : 'A', $middle, 1 );
		$cases    = array(
			'bad seal'    => implode( '.', $parts ),
			'unknown key' => 'bbrt-sc1.0000000000000000.' . explode( '.', $credential )[2],
			'malformed'   => $credential . '.x',
			'expired'     => Site_Credential::issue( $user_id, $token, time() - 1 ),
		);
		foreach ( $cases as $reason => $bad ) {
			$me = self::me( $bad );
			$this->assertSame( 401, $me['status'], $reason );
			$this->assertSame( 'bbrt_session_invalid', $me['body']['code'], $reason );
			$this->assertSame( $reason, $me['body']['data']['reason'], $reason );
		}
		$this->assertSame( 'expired', Site_Credential::authenticate( $credential, time() + HOUR_IN_SECONDS )->get_error_data()['reason'] );
		$this->assertSame( 'malformed', Site_Credential::authenticate( str_repeat( 'a', 2000 ) )->get_error_data()['reason'] );
	}

	public function test_site_credential_ends_with_password_change_suspension_and_deletion(): void {
		require_once ABSPATH . 'wp-admin/includes/user.php';
		$credential_for = static function ( int $user_id ): string {
			$token = WP_Session_Tokens::get_instance( $user_id )->create( time() + HOUR_IN_SECONDS );
			return Site_Credential::issue( $user_id, $token, time() + HOUR_IN_SECONDS );
		};

		$user_id    = self::new_user();
		$credential = $credential_for( $user_id );
		$this->assertSame( 200, self::me( $credential )['status'] );
		wp_set_password( 'a-new-password', $user_id );
		$this->assertSame( 'password changed', self::me( $credential )['body']['data']['reason'] ?? null );

		$user_id    = self::new_user();
		$credential = $credential_for( $user_id );
		update_user_meta( $user_id, 'bbrt_test_suspended', 1 );
		$this->assertSame( 'suspended', self::me( $credential )['body']['data']['reason'] ?? null );

		$user_id    = self::new_user();
		$credential = $credential_for( $user_id );
		wp_delete_user( $user_id );
		$this->assertSame( 'no such user', self::me( $credential )['body']['data']['reason'] ?? null );
	}

	public function test_site_credential_does_not_override_another_credential(): void {
		$bob        = self::uid( 'bob' );
		$token      = WP_Session_Tokens::get_instance( $bob )->create( time() + HOUR_IN_SECONDS );
		$credential = Site_Credential::issue( $bob, $token, time() + HOUR_IN_SECONDS );
		$me         = self::http( 'GET', '/wp/v2/users/me', 'alice', null, array( Site_Credential::HEADER => $credential ) );
		$this->assertSame( self::uid( 'alice' ), $me['body']['id'] );
	}
}
