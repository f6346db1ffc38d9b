<?php
/**
 * The test site under `php -S -t <the site's WordPress tree>`: a PHP file of WordPress's
 * (wp-login.php, wp-admin/…) runs as a web server would run it, any other existing file is
 * served as it is, and every other request goes to WordPress's front controller (REST
 * through ?rest_route=).
 *
 * @package Bbrt\Tests
 */

$bbrt_path = (string) strtok( (string) $_SERVER['REQUEST_URI'], '?' );
// The plugin's scripts: the plugin is loaded from the checkout, outside the site's
// plugins directory, so the test site serves them here (mu-plugins/bbrt-tests.php points
// plugins_url() at this path).
if ( preg_match( '#^/bbrt-test-assets/(bbrt-live(?:-worker)?\.js)$#', $bbrt_path, $bbrt_asset ) ) {
	header( 'Content-Type: text/javascript; charset=UTF-8' );
	readfile( dirname( __DIR__ ) . '/assets/js/' . $bbrt_asset[1] ); // phpcs:ignore WordPress.WP.AlternativeFunctions.file_system_operations_readfile
	return;
}
require_once __DIR__ . '/wp-tests-config.php';
$bbrt_file = ABSPATH . ltrim( $bbrt_path, '/' );
if ( '/' !== $bbrt_path && false === strpos( $bbrt_path, '..' ) && is_file( $bbrt_file ) ) {
	if ( '.php' !== substr( $bbrt_file, -4 ) ) {
		return false;
	}
	$_SERVER['SCRIPT_NAME']     = $bbrt_path;
	$_SERVER['PHP_SELF']        = $bbrt_path;
	$_SERVER['SCRIPT_FILENAME'] = $bbrt_file;
	chdir( dirname( $bbrt_file ) );
	require $bbrt_file;
	return;
}

define( 'WP_USE_THEMES', false );
require ABSPATH . 'wp-blog-header.php';
