<?php
/**
 * The test site under `php -S`: every request goes to WordPress (REST through ?rest_route=).
 *
 * @package Bbrt\Tests
 */

define( 'WP_USE_THEMES', false );
require __DIR__ . '/wp-tests-config.php';
// wp-settings.php, not wp-blog-header.php: that goes through wp-load.php to Debian's
// wp-config.php, which answers 404 unless /etc/wordpress holds a file for this host.
require ABSPATH . 'wp-settings.php';
wp();
require ABSPATH . WPINC . '/template-loader.php';
