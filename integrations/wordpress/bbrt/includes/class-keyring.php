<?php
/**
 * Key rings: the keys shared with bbrt, one ring per purpose.
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * A ring is written `kid:secret,kid:secret` (commas or whitespace between entries). The
 * first key signs; bbrt, holding the same ring, accepts any of them, so a new key is added
 * on bbrt's side first, then put first here, and the old one is removed once what it signed
 * has expired. A ring with any malformed entry is refused as a whole: a typo must not leave
 * a short or empty key in use.
 */
final class Keyring {

	const KID_PATTERN = '/^[A-Za-z0-9_-]{1,32}$/';

	/**
	 * The shortest secret accepted, in bytes.
	 */
	const MIN_SECRET_BYTES = 32;

	/**
	 * The ring's keys in order, kid => secret (the secret's bytes as written); empty when
	 * the ring is unset or malformed.
	 *
	 * @param string $ring The setting's value.
	 * @return array<string, string>
	 */
	public static function parse( string $ring ): array {
		$keys = array();
		foreach ( preg_split( '/[\s,]+/', trim( $ring ), -1, PREG_SPLIT_NO_EMPTY ) as $entry ) {
			$pair = explode( ':', $entry, 2 );
			if ( 2 !== count( $pair ) || ! preg_match( self::KID_PATTERN, $pair[0] )
				|| strlen( $pair[1] ) < self::MIN_SECRET_BYTES || isset( $keys[ $pair[0] ] ) ) {
				return array();
			}
			$keys[ $pair[0] ] = $pair[1];
		}
		return $keys;
	}

	/**
	 * The signing key of a ring setting: [kid, secret], or null when none is usable.
	 *
	 * @param string $setting `ticket_keys` or `event_keys`.
	 * @return array{0: string, 1: string}|null
	 */
	public static function signing_key( string $setting ): ?array {
		$keys = self::parse( (string) Settings::get( $setting ) );
		if ( ! $keys ) {
			return null;
		}
		$kid = (string) array_key_first( $keys );
		return array( $kid, $keys[ $kid ] );
	}

	/**
	 * URL-safe base64 without padding (RFC 4648 §5), as JWT uses.
	 *
	 * @param string $bytes The bytes.
	 */
	public static function base64url( string $bytes ): string {
		return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' );
	}

	/**
	 * The inverse of base64url(), strict: null for any other character, for padding, or for
	 * a text that is not the canonical encoding of its bytes.
	 *
	 * @param string $text The encoded text.
	 */
	public static function base64url_decode( string $text ): ?string {
		if ( ! preg_match( '/^[A-Za-z0-9_-]*$/', $text ) || 1 === strlen( $text ) % 4 ) {
			return null;
		}
		$bytes = base64_decode( strtr( $text, '-_', '+/' ), true );
		if ( false === $bytes || self::base64url( $bytes ) !== $text ) {
			return null;
		}
		return $bytes;
	}
}
