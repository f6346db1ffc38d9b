<?php
/**
 * PHPUnit bootstrap: loads the installed test site in this process (run.sh installed it).
 *
 * @package Bbrt\Tests
 */

$_SERVER['HTTP_HOST']   = '127.0.0.1';
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['REQUEST_URI'] = '/';
require __DIR__ . '/wp-tests-config.php';
require ABSPATH . 'wp-settings.php';
require_once __DIR__ . '/TestCase.php';
