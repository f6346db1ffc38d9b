<?php
/**
 * The Application Passwords fix for BuddyBoss.
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * WordPress honours an Application Password only once it knows the request is an API
 * request (REST_REQUEST, defined late), but BuddyBoss caches the current user on `init`,
 * before that: it then sees nobody, and a reply answers 403 (a new thread 500). Saying
 * "this is an API request" for every REST URL from the start lets the credential resolve
 * before BuddyBoss asks.
 */
final class App_Passwords {

	const TOO_LATE_OPTION = 'bbrt_app_passwords_too_late';

	/**
	 * Adds the filter, and records on REST requests whether something resolved the current
	 * user before this plugin loaded (then only the mu-plugin file is early enough).
	 */
	public static function register(): void {
		// A filter already there is the mu-plugin (or the operator's own fix).
		$fixed_earlier = has_filter( 'application_password_is_api_request' );
		add_filter( 'application_password_is_api_request', array( self::class, 'is_api_request' ) );
		if ( ! self::is_rest_url() ) {
			return;
		}
		$too_late = did_action( 'set_current_user' ) && ! $fixed_earlier;
		if ( $too_late !== (bool) get_option( self::TOO_LATE_OPTION ) ) {
			// Autoloaded: REST requests read it without a query of their own.
			update_option( self::TOO_LATE_OPTION, $too_late ? time() : 0, true );
		}
	}

	/**
	 * The filter.
	 *
	 * @param bool $is_api_request WordPress's answer.
	 */
	public static function is_api_request( $is_api_request ): bool {
		return $is_api_request || self::is_rest_url();
	}

	/**
	 * Whether this request is for the REST API: `/wp-json/…` or `?rest_route=`.
	 */
	public static function is_rest_url(): bool {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only tests for presence.
		if ( isset( $_GET['rest_route'] ) ) {
			return true;
		}
		$uri    = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		$path   = (string) wp_parse_url( $uri, PHP_URL_PATH );
		$prefix = '/' . trim( rest_get_url_prefix(), '/' ) . '/';
		return false !== strpos( $path, $prefix );
	}
}
