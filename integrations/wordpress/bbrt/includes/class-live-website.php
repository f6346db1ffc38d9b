<?php
/**
 * The live website: BuddyBoss's own messages pages, kept current by bbrt's events.
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * Enqueues assets/js/bbrt-live.js on BuddyBoss's messages pages, with what it needs to get
 * a ticket and reach bbrt. Nothing it prints is secret: the ticket route, a wp_rest nonce
 * (the page's own), bbrt's public URL and the member's id.
 */
final class Live_Website {

	const HANDLE = 'bbrt-live';

	/**
	 * The object the script reads (window.bbrtLive).
	 */
	const DATA = 'bbrtLive';

	/**
	 * BuddyBoss's messages script, whose views the live script refreshes.
	 */
	const BUDDYBOSS_HANDLE = 'bp-nouveau-messages';

	/**
	 * Hooks in; late, so BuddyBoss's own scripts (priority 10) are registered first.
	 */
	public static function register(): void {
		add_action( 'wp_enqueue_scripts', array( self::class, 'enqueue' ), 20 );
	}

	/**
	 * Whether the live website is on: the setting, and what it needs (bbrt's URL, a ticket
	 * key ring that signs) configured.
	 */
	public static function enabled(): bool {
		return Settings::feature( 'live_website' )
			&& '' !== (string) Settings::get( 'url' )
			&& null !== Keyring::signing_key( 'ticket_keys' );
	}

	/**
	 * Whether this request is one of BuddyBoss's messages pages (its own test for loading
	 * its messages script), for a logged-in member.
	 */
	public static function on_messages_page(): bool {
		return is_user_logged_in()
			&& buddyboss_messages_available()
			&& function_exists( 'bp_is_user_messages' )
			&& bp_is_user_messages();
	}

	/**
	 * Enqueues the script, or nothing.
	 */
	public static function enqueue(): void {
		if ( ! self::enabled() || ! self::on_messages_page() ) {
			return;
		}
		$base = plugins_url( 'assets/js/', PLUGIN_FILE );
		$deps = wp_script_is( self::BUDDYBOSS_HANDLE, 'registered' ) ? array( self::BUDDYBOSS_HANDLE ) : array();
		wp_enqueue_script( self::HANDLE, $base . 'bbrt-live.js', $deps, VERSION, true );
		wp_localize_script( self::HANDLE, self::DATA, self::data( $base ) );
	}

	/**
	 * The script's data.
	 *
	 * @param string $base The URL of assets/js/.
	 * @return array<string, mixed>
	 */
	public static function data( string $base ): array {
		return array(
			'bbrtUrl'   => (string) Settings::get( 'url' ),
			'ticketUrl' => rest_url( Messages_Route::REST_NAMESPACE . Tickets::ROUTE ),
			'nonce'     => wp_create_nonce( 'wp_rest' ),
			'userId'    => (string) get_current_user_id(),
			'workerUrl' => add_query_arg( 'ver', VERSION, $base . 'bbrt-live-worker.js' ),
			'strings'   => array(
				/* translators: %s: a member's name. */
				'isTyping'  => __( '%s is typing…', 'bbrt' ),
				/* translators: %s: members' names, separated by commas. */
				'areTyping' => __( '%s are typing…', 'bbrt' ),
				'someone'   => __( 'Someone', 'bbrt' ),
			),
		);
	}
}
