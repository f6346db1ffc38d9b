<?php
/**
 * The test site under `php -S`: every request goes to WordPress (REST through ?rest_route=).
 *
 * @package Bbrt\Tests
 */

require __DIR__ . '/wp-tests-config.php';
define( 'WP_USE_THEMES', false );
require ABSPATH . 'wp-blog-header.php';
