<?php
/**
 * The live website script: enqueued on BuddyBoss's messages pages only, with its data and
 * nothing secret (docs/wordpress.md, "The live website").
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use Bbrt\Live_Website;
use Bbrt\Settings;
use WP_Scripts;

/**
 * In process: what enqueue() leaves in WordPress's script queue.
 */
final class LiveWebsiteTest extends TestCase {

	const RING = 'k1:live-website-secret-0123456789abcdef';

	protected function setUp(): void {
		$GLOBALS['wp_scripts']              = new WP_Scripts();
		$GLOBALS['bbrt_test_messages_page'] = true;
		self::configure( array() );
		wp_set_current_user( self::uid( 'alice' ) );
	}

	protected function tearDown(): void {
		delete_option( Settings::OPTION );
		unset( $GLOBALS['bbrt_test_messages_page'] );
		wp_set_current_user( 0 );
		$GLOBALS['wp_scripts'] = new WP_Scripts();
	}

	/**
	 * The settings, over bbrt's URL and a ticket ring.
	 *
	 * @param array<string, mixed> $more Settings to add or replace.
	 */
	private static function configure( array $more ): void {
		update_option(
			Settings::OPTION,
			array_merge(
				array(
					'url'         => 'https://rt.example.org',
					'ticket_keys' => self::RING,
				),
				$more
			)
		);
	}

	public function test_hooked_after_buddyboss_registers_its_scripts(): void {
		$this->assertSame( 20, has_action( 'wp_enqueue_scripts', array( Live_Website::class, 'enqueue' ) ) );
	}

	public function test_enqueued_on_a_messages_page_with_its_data_and_no_secret(): void {
		Live_Website::enqueue();
		$this->assertTrue( wp_script_is( Live_Website::HANDLE, 'enqueued' ) );
		$script = wp_scripts()->registered[ Live_Website::HANDLE ];
		$this->assertSame( plugins_url( 'assets/js/bbrt-live.js', \Bbrt\PLUGIN_FILE ), $script->src );
		$this->assertFileExists( dirname( __DIR__ ) . '/assets/js/bbrt-live.js' );
		$this->assertFileExists( dirname( __DIR__ ) . '/assets/js/bbrt-live-worker.js' );
		$this->assertSame( 1, $script->extra['group'] ?? null, 'in the footer' );

		$extra = (string) wp_scripts()->get_data( Live_Website::HANDLE, 'data' );
		$this->assertStringNotContainsString( 'live-website-secret', $extra, 'the ticket ring never reaches the page' );
		$data = json_decode( (string) preg_replace( '/^var bbrtLive = (.*);$/s', '$1', $extra ), true );
		$this->assertSame( 'https://rt.example.org', $data['bbrtUrl'] );
		$this->assertSame( rest_url( 'bbrt/v1/ticket' ), $data['ticketUrl'] );
		$this->assertSame( (string) self::uid( 'alice' ), $data['userId'] );
		$this->assertSame( 1, wp_verify_nonce( $data['nonce'], 'wp_rest' ), 'the wp_rest nonce the ticket route checks' );
		$this->assertSame( plugins_url( 'assets/js/bbrt-live-worker.js', \Bbrt\PLUGIN_FILE ) . '?ver=' . \Bbrt\VERSION, $data['workerUrl'] );
		$this->assertSame( '%s is typing…', $data['strings']['isTyping'] );
	}

	public function test_depends_on_buddybosss_messages_script_when_registered(): void {
		wp_register_script( Live_Website::BUDDYBOSS_HANDLE, 'https://site.example/buddypress-messages.js', array(), '1', true );
		Live_Website::enqueue();
		$this->assertSame( array( Live_Website::BUDDYBOSS_HANDLE ), wp_scripts()->registered[ Live_Website::HANDLE ]->deps );
	}

	public function test_not_on_other_pages(): void {
		$GLOBALS['bbrt_test_messages_page'] = false;
		Live_Website::enqueue();
		$this->assertFalse( wp_script_is( Live_Website::HANDLE, 'registered' ) );
	}

	public function test_not_for_a_visitor(): void {
		wp_set_current_user( 0 );
		Live_Website::enqueue();
		$this->assertFalse( wp_script_is( Live_Website::HANDLE, 'registered' ) );
	}

	public function test_not_when_turned_off(): void {
		self::configure( array( 'feature_live_website' => false ) );
		Live_Website::enqueue();
		$this->assertFalse( wp_script_is( Live_Website::HANDLE, 'registered' ) );
	}

	public function test_not_without_bbrts_url_or_a_ticket_ring_that_signs(): void {
		foreach ( array( array( 'url' => '' ), array( 'ticket_keys' => '' ), array( 'ticket_keys' => 'not a ring' ) ) as $missing ) {
			self::configure( $missing );
			Live_Website::enqueue();
			$this->assertFalse( wp_script_is( Live_Website::HANDLE, 'registered' ), wp_json_encode( $missing ) );
		}
	}

	public function test_on_by_default_and_a_setting_of_its_own(): void {
		$this->assertTrue( Settings::feature( 'live_website' ) );
		$this->assertSame( 'BBRT_LIVE_WEBSITE', Settings::FIELDS['feature_live_website']['constant'] );
		$saved = Settings::sanitize_option( array( 'url' => 'https://rt.example.org' ) );
		$this->assertFalse( $saved['feature_live_website'], 'an unchecked box on the page is off' );
	}
}
