<?php
/**
 * The admin page (Settings → bbrt) and the admin notices.
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * Settings → bbrt, built on the Settings API (its nonce and capability checks), and the
 * notices that say what the plugin cannot do on this site.
 */
final class Admin {

	const PAGE = 'bbrt';

	/**
	 * Hooks the page and the notices.
	 */
	public static function register(): void {
		add_action( 'admin_menu', array( self::class, 'menu' ) );
		add_action( 'admin_init', array( self::class, 'settings' ) );
		add_action( 'admin_notices', array( self::class, 'notices' ) );
	}

	/**
	 * The menu entry.
	 */
	public static function menu(): void {
		add_options_page( __( 'bbrt', 'bbrt' ), __( 'bbrt', 'bbrt' ), 'manage_options', self::PAGE, array( self::class, 'render' ) );
	}

	/**
	 * The option and its fields.
	 */
	public static function settings(): void {
		register_setting(
			self::PAGE,
			Settings::OPTION,
			array(
				'type'              => 'array',
				'sanitize_callback' => array( Settings::class, 'sanitize_option' ),
				'default'           => array(),
			)
		);
		add_settings_section( 'bbrt_main', __( 'Connection and features', 'bbrt' ), '__return_false', self::PAGE );
		$labels = array(
			'url'                      => __( 'bbrt URL', 'bbrt' ),
			'events_url'               => __( 'Events URL (default: the bbrt URL + /site/events)', 'bbrt' ),
			'ticket_keys'              => __( 'Ticket keys', 'bbrt' ),
			'event_keys'               => __( 'Event keys', 'bbrt' ),
			'feature_idempotent_sends' => __( 'Sends stored exactly once', 'bbrt' ),
			'feature_app_passwords'    => __( 'Application Passwords fix', 'bbrt' ),
			'feature_live_website'     => __( 'Live website (messages pages update from bbrt)', 'bbrt' ),
			'key_retention_days'       => __( 'Keep send keys for (days)', 'bbrt' ),
		);
		foreach ( $labels as $name => $label ) {
			add_settings_field( 'bbrt_' . $name, $label, array( self::class, 'field' ), self::PAGE, 'bbrt_main', array( 'name' => $name ) );
		}
	}

	/**
	 * One field; a setting fixed in wp-config.php is shown read-only, a secret never.
	 *
	 * @param array{name: string} $args The field.
	 */
	public static function field( array $args ): void {
		$name  = $args['name'];
		$type  = Settings::FIELDS[ $name ]['type'];
		$value = Settings::get( $name );
		$id    = 'bbrt_' . $name;
		$input = Settings::OPTION . '[' . $name . ']';
		$fixed = Settings::from_constant( $name );

		if ( 'bool' === $type ) {
			printf(
				'<input type="checkbox" id="%1$s" name="%2$s" value="1" %3$s %4$s />',
				esc_attr( $id ),
				esc_attr( $input ),
				checked( (bool) $value, true, false ),
				disabled( $fixed, true, false )
			);
		} elseif ( 'secret' === $type ) {
			printf(
				'<input type="password" class="regular-text" id="%1$s" name="%2$s" value="" autocomplete="new-password" placeholder="%3$s" %4$s />',
				esc_attr( $id ),
				esc_attr( $input ),
				esc_attr( '' === $value ? '' : __( 'set (leave empty to keep)', 'bbrt' ) ),
				disabled( $fixed, true, false )
			);
		} else {
			printf(
				'<input type="%1$s" class="regular-text" id="%2$s" name="%3$s" value="%4$s" %5$s />',
				esc_attr( 'days' === $type ? 'number' : 'url' ),
				esc_attr( $id ),
				esc_attr( $input ),
				esc_attr( (string) $value ),
				disabled( $fixed, true, false )
			);
		}
		if ( $fixed ) {
			printf(
				'<p class="description">%s</p>',
				/* translators: %s: the constant's name. */
				esc_html( sprintf( __( 'Set by %s in wp-config.php.', 'bbrt' ), Settings::FIELDS[ $name ]['constant'] ) )
			);
		}
	}

	/**
	 * The page.
	 */
	public static function render(): void {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		echo '<div class="wrap"><h1>' . esc_html__( 'bbrt', 'bbrt' ) . '</h1><form action="options.php" method="post">';
		settings_fields( self::PAGE );
		do_settings_sections( self::PAGE );
		submit_button();
		echo '</form></div>';
	}

	/**
	 * What the plugin cannot do here: no BuddyBoss Messages, or the Application Passwords
	 * fix loaded too late.
	 */
	public static function notices(): void {
		if ( ! current_user_can( 'activate_plugins' ) ) {
			return;
		}
		if ( ! buddyboss_messages_available() ) {
			printf(
				'<div class="notice notice-warning"><p>%s</p></div>',
				esc_html__( 'bbrt needs BuddyBoss Platform with its Messages component active. Until then it does nothing: no route, no changes to messages.', 'bbrt' )
			);
		}
		if ( Settings::feature( 'app_passwords' ) && get_option( App_Passwords::TOO_LATE_OPTION ) ) {
			printf(
				'<div class="notice notice-error"><p>%s <code>%s</code></p></div>',
				esc_html__( 'On this site, something resolves the current user before bbrt loads, so BuddyBoss will not see Application Password users. Copy this file into wp-content/mu-plugins/:', 'bbrt' ),
				esc_html( plugin_dir_path( PLUGIN_FILE ) . 'mu-plugin/bbrt-app-passwords.php' )
			);
		}
	}
}
