<?php
/**
 * `POST /wp-json/bbrt/v1/ticket`: a one-minute connection ticket for the logged-in member.
 *
 * @package Bbrt
 */

namespace Bbrt;

use WP_Error;
use WP_REST_Request;
use WP_REST_Response;
use WP_REST_Server;
use WP_Session_Tokens;

defined( 'ABSPATH' ) || exit;

/**
 * A ticket is a JWT (RFC 7519) with HS256 pinned, signed with the ticket key ring's first
 * key: bbrt verifies it locally and keeps its `sc` claim, the site credential, for the calls
 * it makes to the site for this connection. Only a browser's login session gets a ticket
 * (cookie + `wp_rest` nonce): an Application Password or a site credential has no login
 * session to bind one to, so bbrt can never mint a ticket itself.
 */
final class Tickets {

	const ROUTE = '/ticket';

	/**
	 * The header's `typ`, so a ticket is never taken for another JWT signed with a key that
	 * happens to be reused.
	 */
	const TYPE = 'bbrt-ticket';

	/**
	 * The ticket's lifetime in seconds; the `bbrt_ticket_ttl` filter may shorten it (1–60).
	 */
	const TTL = 30;

	/**
	 * Registers the route (whatever the idempotent-sends setting says).
	 */
	public static function register(): void {
		// Without BuddyBoss there is nothing for bbrt to connect to.
		if ( ! buddyboss_messages_available() ) {
			return;
		}
		register_rest_route(
			Messages_Route::REST_NAMESPACE,
			self::ROUTE,
			array(
				'methods'             => WP_REST_Server::CREATABLE,
				'callback'            => array( self::class, 'issue' ),
				'permission_callback' => array( self::class, 'permission' ),
			)
		);
		add_filter( 'rest_post_dispatch', array( self::class, 'no_store' ), 10, 3 );
	}

	/**
	 * Logged out (or a missing nonce, which WordPress treats as logged out) → 401; a bad
	 * nonce is refused 403 by WordPress before this runs.
	 *
	 * @return true|WP_Error
	 */
	public static function permission() {
		if ( is_user_logged_in() ) {
			return true;
		}
		return new WP_Error(
			'bbrt_ticket_login_required',
			__( 'Log in to the site to connect.', 'bbrt' ),
			array( 'status' => rest_authorization_required_code() )
		);
	}

	/**
	 * Every answer of the route, errors included, is `Cache-Control: no-store`.
	 *
	 * @param WP_REST_Response $response The answer.
	 * @param WP_REST_Server   $server   The server.
	 * @param WP_REST_Request  $request  The request.
	 * @return WP_REST_Response
	 */
	public static function no_store( $response, $server, $request ) {
		if ( '/' . Messages_Route::REST_NAMESPACE . self::ROUTE === $request->get_route() && $response instanceof WP_REST_Response ) {
			$response->header( 'Cache-Control', 'no-store' );
			// WordPress sends its no-cache headers after this, for logged-in users.
			add_filter( 'nocache_headers', array( self::class, 'no_store_headers' ) );
		}
		return $response;
	}

	/**
	 * WordPress's no-cache headers with `no-store` (this route's answers only).
	 *
	 * @param array<string, string> $headers The headers.
	 * @return array<string, string>
	 */
	public static function no_store_headers( $headers ) {
		$headers['Cache-Control'] = 'no-store';
		return $headers;
	}

	/**
	 * The route's callback.
	 *
	 * @return WP_REST_Response|WP_Error
	 */
	public static function issue() {
		$user_id = get_current_user_id();
		$token   = wp_get_session_token();
		$cookie  = wp_parse_auth_cookie( '', 'logged_in' );
		$session = '' === $token ? null : WP_Session_Tokens::get_instance( $user_id )->get( $token );
		// The login cookie's session must be this user's: not an Application Password.
		if ( ! is_array( $session ) || ! is_array( $cookie ) || wp_get_current_user()->user_login !== $cookie['username'] ) {
			return new WP_Error(
				'bbrt_ticket_login_required',
				__( 'A ticket is issued to a browser\'s login session only.', 'bbrt' ),
				array( 'status' => 401 )
			);
		}
		$signing  = Keyring::signing_key( 'ticket_keys' );
		$audience = untrailingslashit( (string) Settings::get( 'url' ) );
		if ( null === $signing || '' === $audience ) {
			return new WP_Error(
				'bbrt_tickets_not_configured',
				__( 'Real-time connections are not set up on this site.', 'bbrt' ),
				array( 'status' => 503 )
			);
		}
		$ticket = self::encode( $user_id, $token, (int) $session['expiration'], $signing, $audience, time() );
		return new WP_REST_Response(
			array(
				'ticket'     => $ticket['jwt'],
				'expires_at' => $ticket['exp'],
			),
			200
		);
	}

	/**
	 * Builds and signs a ticket.
	 *
	 * @param int                        $user_id       The member.
	 * @param string                     $token         Their login session token.
	 * @param int                        $session_until The session's expiry.
	 * @param array{0: string, 1: string} $signing      [kid, secret].
	 * @param string                     $audience      bbrt's URL.
	 * @param int                        $now           The current Unix time.
	 * @return array{jwt: string, exp: int}
	 */
	public static function encode( int $user_id, string $token, int $session_until, array $signing, string $audience, int $now ): array {
		$ttl    = max( 1, min( 60, (int) apply_filters( 'bbrt_ticket_ttl', self::TTL ) ) );
		$header = array(
			'alg' => 'HS256',
			'kid' => $signing[0],
			'typ' => self::TYPE,
		);
		$claims = array(
			'iss' => untrailingslashit( home_url() ),
			'aud' => $audience,
			'sub' => (string) $user_id,
			'iat' => $now,
			'nbf' => $now,
			'exp' => $now + $ttl,
			'jti' => bin2hex( random_bytes( 16 ) ),
			'sc'  => Site_Credential::issue( $user_id, $token, $session_until ),
		);
		$flags  = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE;
		$input  = Keyring::base64url( (string) wp_json_encode( $header, $flags ) ) . '.' . Keyring::base64url( (string) wp_json_encode( $claims, $flags ) );
		return array(
			'jwt' => $input . '.' . Keyring::base64url( hash_hmac( 'sha256', $input, $signing[1], true ) ),
			'exp' => $claims['exp'],
		);
	}
}
