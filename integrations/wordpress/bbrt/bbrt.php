<?php
/**
 * Plugin Name:       bbrt
 * Plugin URI:        https://github.com/bbrt/bbrt
 * Description:       The site side of bbrt, the real-time server for BuddyBoss: message sends that are stored exactly once, connection tickets, site events, the live website (BuddyBoss's messages pages updated from bbrt), and the Application Passwords fix.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * Author:            bbrt contributors
 * License:           MIT OR Apache-2.0
 * Text Domain:       bbrt
 * Domain Path:       /languages
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

const VERSION     = '0.1.0';
const PLUGIN_FILE = __FILE__;

require_once __DIR__ . '/includes/class-settings.php';
require_once __DIR__ . '/includes/class-send-keys.php';
require_once __DIR__ . '/includes/class-messages-route.php';
require_once __DIR__ . '/includes/class-keyring.php';
require_once __DIR__ . '/includes/class-site-credential.php';
require_once __DIR__ . '/includes/class-tickets.php';
require_once __DIR__ . '/includes/class-events.php';
require_once __DIR__ . '/includes/class-live-website.php';
require_once __DIR__ . '/includes/app-passwords.php';
require_once __DIR__ . '/includes/class-admin.php';

/*
 * The Application Passwords fix must be in place before anything asks WordPress who the
 * current user is; BuddyBoss asks on `init`, so plugin load is early enough (verified on a
 * real site, see docs/wordpress.md). It records when it came too late, for the admin notice.
 */
if ( Settings::feature( 'app_passwords' ) ) {
	App_Passwords::register();
}

add_action( 'plugins_loaded', __NAMESPACE__ . '\\load_textdomain' );
// At load for the same reason: X-BBRT-Session must resolve before BuddyBoss asks on `init`.
Site_Credential::register();
add_action( 'rest_api_init', array( Messages_Route::class, 'register' ) );
add_action( 'rest_api_init', array( Tickets::class, 'register' ) );
add_action( 'plugins_loaded', array( Events::class, 'register' ) );
Live_Website::register();
add_action( Send_Keys::PURGE_HOOK, array( Send_Keys::class, 'purge' ) );
add_action( 'init', array( Send_Keys::class, 'maybe_upgrade' ) );
add_action( 'init', array( Send_Keys::class, 'ensure_purge_scheduled' ) );

if ( is_admin() ) {
	Admin::register();
}

register_activation_hook( __FILE__, __NAMESPACE__ . '\\activate' );
register_deactivation_hook( __FILE__, array( Send_Keys::class, 'deactivate' ) );

/**
 * Activation: the key table, the purge, and the options that every request reads, made
 * autoloaded so that reading them costs no query.
 */
function activate(): void {
	Send_Keys::activate();
	add_option( App_Passwords::TOO_LATE_OPTION, 0, '', true );
}

/**
 * Loads the plugin's translations.
 */
function load_textdomain(): void {
	load_plugin_textdomain( 'bbrt', false, dirname( plugin_basename( PLUGIN_FILE ) ) . '/languages' );
}

/**
 * Whether BuddyBoss Platform is active with its Messages component: without it the plugin
 * registers no route and only says so in the admin.
 */
function buddyboss_messages_available(): bool {
	return function_exists( 'messages_new_message' )
		&& function_exists( 'bp_is_active' )
		&& bp_is_active( 'messages' )
		&& class_exists( 'BP_REST_Messages_Endpoint' );
}
