<?php
/**
 * The site credential: what bbrt presents to the site for a member who connected with a
 * ticket, bound to that member's WordPress login session.
 *
 * @package Bbrt
 */

namespace Bbrt;

use WP_Error;
use WP_Session_Tokens;

defined( 'ABSPATH' ) || exit;

/**
 * `bbrt-sc1.<kid>.<base64url(nonce ‖ ciphertext)>`: the member's user id, login session
 * token and the session's expiry, sealed (XChaCha20-Poly1305) with a key only the site
 * has. bbrt stores it and sends it back in `X-BBRT-Session`; it can neither read it nor
 * make one for another member. The site accepts it only while that login session is valid,
 * so logout, a password change, the session's expiry, suspension or deletion end it.
 */
final class Site_Credential {

	const PREFIX = 'bbrt-sc1';

	/**
	 * The request header bbrt presents it in.
	 */
	const HEADER = 'X-BBRT-Session';

	/**
	 * The longest credential accepted, in bytes (an issued one is about 200).
	 */
	const MAX_BYTES = 1024;

	/**
	 * Why this request's credential was refused, for rest_authentication_errors.
	 *
	 * @var WP_Error|null
	 */
	private static $refusal = null;

	/**
	 * Hooks the authentication. After core's cookie and Application Password checks, so a
	 * request they already identified keeps its user.
	 */
	public static function register(): void {
		add_filter( 'determine_current_user', array( self::class, 'determine_current_user' ), 30 );
		add_filter( 'rest_authentication_errors', array( self::class, 'authentication_errors' ), 90 );
	}

	/**
	 * The key: derived from the site's auth salt, so it never leaves the site, is used for
	 * nothing else, and changes (ending every credential) when the salts are rotated.
	 */
	private static function key(): string {
		return hash_hmac( 'sha256', 'bbrt site credential v1', wp_salt( 'auth' ), true );
	}

	/**
	 * The key's id: names the key without revealing it.
	 */
	public static function kid(): string {
		return substr( hash( 'sha256', 'bbrt site credential kid|' . self::key() ), 0, 16 );
	}

	/**
	 * Seals a credential for a member's login session.
	 *
	 * @param int    $user_id    The member.
	 * @param string $token      Their WordPress session token (from the login cookie).
	 * @param int    $expires_at The session's expiry (Unix seconds).
	 */
	public static function issue( int $user_id, string $token, int $expires_at ): string {
		$associated = self::PREFIX . '.' . self::kid();
		$nonce      = random_bytes( SODIUM_CRYPTO_AEAD_XCHACHA20POLY1305_IETF_NPUBBYTES );
		$plaintext  = (string) wp_json_encode(
			array(
				'uid' => $user_id,
				'tok' => $token,
				'exp' => $expires_at,
				'pwd' => self::password_tag( $user_id ),
			)
		);
		$sealed     = sodium_crypto_aead_xchacha20poly1305_ietf_encrypt( $plaintext, $associated, $nonce, self::key() );
		return $associated . '.' . Keyring::base64url( $nonce . $sealed );
	}

	/**
	 * The member a credential acts for, or why it is refused.
	 *
	 * @param string   $credential The header's value.
	 * @param int|null $now        The current Unix time (tests pass their own).
	 * @return int|WP_Error
	 */
	public static function authenticate( string $credential, $now = null ) {
		$now   = null === $now ? time() : (int) $now;
		$parts = explode( '.', $credential );
		if ( strlen( $credential ) > self::MAX_BYTES || 3 !== count( $parts ) || self::PREFIX !== $parts[0] ) {
			return self::refused( 'malformed' );
		}
		if ( ! hash_equals( self::kid(), $parts[1] ) ) {
			return self::refused( 'unknown key' );
		}
		$bytes = Keyring::base64url_decode( $parts[2] );
		$nonce = SODIUM_CRYPTO_AEAD_XCHACHA20POLY1305_IETF_NPUBBYTES;
		if ( null === $bytes || strlen( $bytes ) <= $nonce + SODIUM_CRYPTO_AEAD_XCHACHA20POLY1305_IETF_ABYTES ) {
			return self::refused( 'malformed' );
		}
		$plaintext = sodium_crypto_aead_xchacha20poly1305_ietf_decrypt( substr( $bytes, $nonce ), $parts[0] . '.' . $parts[1], substr( $bytes, 0, $nonce ), self::key() );
		$claims    = false === $plaintext ? null : json_decode( $plaintext, true );
		if ( ! is_array( $claims ) || ! is_int( $claims['uid'] ?? null ) || ! is_string( $claims['tok'] ?? null ) || ! is_int( $claims['exp'] ?? null ) ) {
			return self::refused( 'bad seal' );
		}
		if ( $claims['exp'] <= $now ) {
			return self::refused( 'expired' );
		}
		$user_id = $claims['uid'];
		if ( ! get_userdata( $user_id ) ) {
			return self::refused( 'no such user' );
		}
		// WordPress keeps login sessions across a password change and ends the cookies by
		// their password fragment instead; the credential does the same.
		if ( ! is_string( $claims['pwd'] ?? null ) || ! hash_equals( self::password_tag( $user_id ), $claims['pwd'] ) ) {
			return self::refused( 'password changed' );
		}
		if ( self::suspended( $user_id ) ) {
			return self::refused( 'suspended' );
		}
		// The login session must still exist: logout and a password change destroy it.
		if ( ! WP_Session_Tokens::get_instance( $user_id )->verify( $claims['tok'] ) ) {
			return self::refused( 'session ended' );
		}
		return $user_id;
	}

	/**
	 * A tag of the member's password hash: changes when the password does.
	 *
	 * @param int $user_id The member.
	 */
	private static function password_tag( int $user_id ): string {
		$user = get_userdata( $user_id );
		return substr( hash_hmac( 'sha256', 'bbrt password|' . ( $user ? $user->user_pass : '' ), self::key() ), 0, 16 );
	}

	/**
	 * Whether BuddyBoss has suspended the member or marked them a spammer (neither ends
	 * their login sessions, so the credential checks it itself).
	 *
	 * @param int $user_id The member.
	 */
	private static function suspended( int $user_id ): bool {
		if ( function_exists( 'bp_moderation_is_user_suspended' ) && bp_moderation_is_user_suspended( $user_id ) ) {
			return true;
		}
		return function_exists( 'bp_is_user_spammer' ) && bp_is_user_spammer( $user_id );
	}

	/**
	 * The filter: a REST request with the header and no other credential acts for the member
	 * it names.
	 *
	 * @param int|false $user_id What earlier checks found.
	 * @return int|false
	 */
	public static function determine_current_user( $user_id ) {
		if ( $user_id || ! isset( $_SERVER['HTTP_X_BBRT_SESSION'] ) || ! App_Passwords::is_rest_url() ) {
			return $user_id;
		}
		$result = self::authenticate( (string) wp_unslash( $_SERVER['HTTP_X_BBRT_SESSION'] ) ); // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- compared, never printed.
		if ( is_wp_error( $result ) ) {
			self::$refusal = $result;
			return $user_id;
		}
		self::$refusal = null;
		return $result;
	}

	/**
	 * A refused credential answers 401 rather than running the request anonymously, so bbrt
	 * knows to end the connection.
	 *
	 * @param WP_Error|null|true $result Earlier checks' result.
	 * @return WP_Error|null|true
	 */
	public static function authentication_errors( $result ) {
		if ( ! empty( $result ) || null === self::$refusal || is_user_logged_in() ) {
			return $result;
		}
		return self::$refusal;
	}

	/**
	 * The refusal: one code and text whatever the cause; the reason (in `data.reason`) is
	 * for bbrt's log, never for its clients.
	 *
	 * @param string $reason Why, for the log.
	 */
	private static function refused( string $reason ): WP_Error {
		/**
		 * Fires when a site credential is refused.
		 *
		 * @param string $reason malformed, unknown key, bad seal, expired, no such user,
		 *                       password changed, suspended or session ended.
		 */
		do_action( 'bbrt_site_credential_refused', $reason );
		return new WP_Error(
			'bbrt_session_invalid',
			__( 'The bbrt session is not valid: connect again.', 'bbrt' ),
			array(
				'status' => 401,
				'reason' => $reason,
			)
		);
	}
}
