<?php
/**
 * Settings: constants over options, the secret never lost by an empty field.
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use Bbrt\Settings;

/**
 * The settings' sources and sanitizing.
 */
final class SettingsTest extends TestCase {

	protected function tearDown(): void {
		delete_option( Settings::OPTION );
	}

	public function test_defaults_then_the_option(): void {
		$this->assertTrue( Settings::feature( 'idempotent_sends' ) );
		$this->assertSame( '', Settings::get( 'url' ) );
		update_option(
			Settings::OPTION,
			Settings::sanitize_option(
				array(
					'url'                => 'https://rt.example/ ',
					'ticket_keys'      => 's3cret',
					'key_retention_days' => '1000',
				)
			)
		);
		$this->assertSame( 'https://rt.example/', Settings::get( 'url' ) );
		$this->assertSame( 365, Settings::get( 'key_retention_days' ) );
		$this->assertFalse( Settings::feature( 'idempotent_sends' ), 'an unchecked box is off' );
		$kept = Settings::sanitize_option( array( 'ticket_keys' => '' ) );
		$this->assertSame( 's3cret', $kept['ticket_keys'], 'the page never prints the secret, so empty keeps it' );
	}

	public function test_the_admin_page_never_prints_the_secret_and_escapes(): void {
		update_option( Settings::OPTION, array( 'ticket_keys' => 'the-secret-"<b>', 'url' => 'https://rt.example/?a="b"' ) );
		ob_start();
		\Bbrt\Admin::field( array( 'name' => 'ticket_keys' ) );
		\Bbrt\Admin::field( array( 'name' => 'url' ) );
		\Bbrt\Admin::field( array( 'name' => 'feature_idempotent_sends' ) );
		$html = (string) ob_get_clean();
		$this->assertStringNotContainsString( 'the-secret', $html );
		$this->assertStringContainsString( 'type="password"', $html );
		$this->assertStringNotContainsString( '"b"', $html, 'attribute values are escaped' );
	}

	public function test_a_constant_wins(): void {
		update_option( Settings::OPTION, array( 'feature_app_passwords' => true ) );
		$this->assertFalse( Settings::from_constant( 'feature_app_passwords' ) );
		define( 'BBRT_FEATURE_APP_PASSWORDS', false );
		$this->assertTrue( Settings::from_constant( 'feature_app_passwords' ) );
		$this->assertFalse( Settings::feature( 'app_passwords' ) );
	}
}
