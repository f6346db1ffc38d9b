<?php
/**
 * The test site under `php -S`: every request goes to WordPress (REST through ?rest_route=).
 *
 * @package Bbrt\Tests
 */

define( 'WP_USE_THEMES', false );
require __DIR__ . '/wp-tests-config.php';
require ABSPATH . 'wp-blog-header.php';
