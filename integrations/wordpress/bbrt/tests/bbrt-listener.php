<?php
/**
 * A stand-in for bbrt's events route under `php -S`: records each request in
 * $BBRT_LISTENER_DIR (headers, body, time received) and answers 200, or the status in the
 * file `status` there.
 *
 * @package Bbrt\Tests
 */

$dir     = (string) getenv( 'BBRT_LISTENER_DIR' );
$headers = array();
foreach ( $_SERVER as $name => $value ) {
	if ( 0 === strpos( $name, 'HTTP_' ) || 'CONTENT_TYPE' === $name ) {
		$headers[ strtolower( str_replace( '_', '-', preg_replace( '/^HTTP_/', '', $name ) ) ) ] = $value;
	}
}
$record = array(
	'received_at' => microtime( true ),
	'method'      => $_SERVER['REQUEST_METHOD'],
	'path'        => $_SERVER['REQUEST_URI'],
	'headers'     => $headers,
	'body'        => file_get_contents( 'php://input' ),
);
file_put_contents( $dir . '/' . sprintf( '%.6f', microtime( true ) ) . '-' . getmypid() . '.json', json_encode( $record ) ); // phpcs:ignore Generic.PHP.ForbiddenFunctions -- no WordPress here.
$status = is_file( $dir . '/status' ) ? (int) file_get_contents( $dir . '/status' ) : 200;
http_response_code( $status );
header( 'Content-Type: application/json' );
echo '{"ok":true}';
