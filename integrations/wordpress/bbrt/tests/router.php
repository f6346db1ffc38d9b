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
