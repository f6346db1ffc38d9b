<?php
/**
 * The test site's wp-config.php. run.sh links it into the site's tree of links to Debian's
 * WordPress in place of Debian's own, which reads /etc/wordpress/config-<host>.php, so a
 * request that starts at wp-load.php (wp-login.php, the front controller) finds the test
 * configuration.
 *
 * @package Bbrt\Tests
 */

$bbrt_test_config = __DIR__ . '/wp-tests-config.php';
require_once $bbrt_test_config;
require_once ABSPATH . 'wp-settings.php';
