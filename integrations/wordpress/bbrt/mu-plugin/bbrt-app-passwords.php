<?php
/**
 * Plugin Name: bbrt — Application Passwords for BuddyBoss
 * Description: Copy this file to wp-content/mu-plugins/ only when the bbrt plugin's admin notice asks for it: lets WordPress honour an Application Password on REST URLs before BuddyBoss reads the current user.
 * Version:     0.1.0
 * License:     MIT OR Apache-2.0
 *
 * @package Bbrt
 */

defined( 'ABSPATH' ) || exit;

add_filter(
	'application_password_is_api_request',
	static function ( $is_api_request ) {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only tests for presence.
		if ( $is_api_request || isset( $_GET['rest_route'] ) ) {
			return true;
		}
		$uri  = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized
		$path = (string) wp_parse_url( $uri, PHP_URL_PATH );
		return false !== strpos( $path, '/' . trim( rest_get_url_prefix(), '/' ) . '/' );
	}
);
