<?php
/**
 * Settings: a constant in wp-config.php wins over the admin page's option.
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * The plugin's settings, each read from a constant when defined, else from the option
 * `bbrt_settings` that the admin page writes.
 */
final class Settings {

	const OPTION = 'bbrt_settings';

	/**
	 * Every setting once: its constant, its default and its type.
	 *
	 * @var array<string, array{constant: string, default: mixed, type: string}>
	 */
	const FIELDS = array(
		'url'                      => array(
			'constant' => 'BBRT_URL',
			'default'  => '',
			'type'     => 'url',
		),
		'events_url'               => array(
			'constant' => 'BBRT_EVENTS_URL',
			'default'  => '',
			'type'     => 'url',
		),
		'ticket_keys'              => array(
			'constant' => 'BBRT_TICKET_KEYS',
			'default'  => '',
			'type'     => 'secret',
		),
		'event_keys'               => array(
			'constant' => 'BBRT_EVENT_KEYS',
			'default'  => '',
			'type'     => 'secret',
		),
		'feature_idempotent_sends' => array(
			'constant' => 'BBRT_FEATURE_IDEMPOTENT_SENDS',
			'default'  => true,
			'type'     => 'bool',
		),
		'feature_app_passwords'    => array(
			'constant' => 'BBRT_FEATURE_APP_PASSWORDS',
			'default'  => true,
			'type'     => 'bool',
		),
		'feature_live_website'     => array(
			'constant' => 'BBRT_LIVE_WEBSITE',
			'default'  => true,
			'type'     => 'bool',
		),
		'key_retention_days'       => array(
			'constant' => 'BBRT_KEY_RETENTION_DAYS',
			'default'  => 7,
			'type'     => 'days',
		),
	);

	/**
	 * A setting's value.
	 *
	 * @param string $name A key of FIELDS.
	 * @return mixed
	 */
	public static function get( string $name ) {
		$field = self::FIELDS[ $name ];
		if ( defined( $field['constant'] ) ) {
			return self::sanitize( $name, constant( $field['constant'] ) );
		}
		$stored = get_option( self::OPTION, array() );
		if ( is_array( $stored ) && array_key_exists( $name, $stored ) ) {
			return self::sanitize( $name, $stored[ $name ] );
		}
		return $field['default'];
	}

	/**
	 * Whether a feature is on.
	 *
	 * @param string $feature `idempotent_sends`, `app_passwords` or `live_website`.
	 */
	public static function feature( string $feature ): bool {
		return (bool) self::get( 'feature_' . $feature );
	}

	/**
	 * Whether wp-config.php fixes this setting (the admin page then shows it read-only).
	 *
	 * @param string $name A key of FIELDS.
	 */
	public static function from_constant( string $name ): bool {
		return defined( self::FIELDS[ $name ]['constant'] );
	}

	/**
	 * One value brought to its field's type.
	 *
	 * @param string $name  A key of FIELDS.
	 * @param mixed  $value The raw value.
	 * @return mixed
	 */
	public static function sanitize( string $name, $value ) {
		switch ( self::FIELDS[ $name ]['type'] ) {
			case 'url':
				return esc_url_raw( trim( (string) $value ), array( 'http', 'https' ) );
			case 'secret':
				return trim( (string) $value );
			case 'bool':
				return rest_sanitize_boolean( $value );
			case 'days':
				return max( 1, min( 365, (int) $value ) );
		}
		return $value;
	}

	/**
	 * Sanitizes the admin form's submission; an empty secret field keeps the stored secret,
	 * because the page never prints it back.
	 *
	 * @param mixed $input The submitted option value.
	 * @return array<string, mixed>
	 */
	public static function sanitize_option( $input ): array {
		$input  = is_array( $input ) ? $input : array();
		$stored = get_option( self::OPTION, array() );
		$stored = is_array( $stored ) ? $stored : array();
		$clean  = array();
		foreach ( self::FIELDS as $name => $field ) {
			if ( 'bool' === $field['type'] ) {
				$clean[ $name ] = ! empty( $input[ $name ] );
			} elseif ( 'secret' === $field['type'] && '' === trim( (string) ( $input[ $name ] ?? '' ) ) ) {
				$clean[ $name ] = $stored[ $name ] ?? '';
			} elseif ( array_key_exists( $name, $input ) ) {
				$clean[ $name ] = self::sanitize( $name, $input[ $name ] );
			} else {
				$clean[ $name ] = $stored[ $name ] ?? $field['default'];
			}
		}
		return $clean;
	}
}
