<?php
/**
 * Installs the test site into the fresh database: WordPress (wp_install), BuddyBoss's
 * tables (the stand-in's), the plugin's table, and the users alice, bob and carol with
 * Application Passwords. Writes $BBRT_TEST_TMP/fixture.json. Run once by run.sh.
 *
 * @package Bbrt\Tests
 */

define( 'WP_INSTALLING', true );
$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require __DIR__ . '/wp-tests-config.php';
require ABSPATH . 'wp-settings.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once __DIR__ . '/stubs/buddyboss.php';
require_once dirname( __DIR__ ) . '/bbrt.php';

add_filter( 'pre_wp_mail', '__return_true' ); // No MTA on test machines.
wp_install( 'bbrt tests', 'admin', 'admin@example.org', true, '', 'admin-password' );
update_option( 'permalink_structure', '' );
bbrt_test_install_buddyboss_tables();
\Bbrt\activate();

$fixture = array( 'users' => array() );
foreach ( array( 'alice', 'bob', 'carol' ) as $login ) {
	$id = wp_insert_user(
		array(
			'user_login' => $login,
			'user_pass'  => $login . '-password',
			'user_email' => $login . '@example.org',
			'role'       => 'subscriber',
		)
	);
	list( $password ) = WP_Application_Passwords::create_new_application_password( $id, array( 'name' => 'bbrt-tests' ) );
	$fixture['users'][ $login ] = array(
		'id'    => $id,
		'basic' => base64_encode( $login . ':' . $password ),
	);
}
file_put_contents( getenv( 'BBRT_TEST_TMP' ) . '/fixture.json', wp_json_encode( $fixture, JSON_PRETTY_PRINT ) );
echo "installed the test site into database " . DB_NAME . "\n";
