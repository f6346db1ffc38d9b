<?php
/**
 * Helpers shared by the plugin's tests: the fixture, in-process REST calls, and the test
 * site under `php -S` for requests that must really run concurrently.
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

use WP_REST_Request;
use WP_REST_Response;

/**
 * Base class: plain PHPUnit, against the WordPress loaded by bootstrap.php.
 */
abstract class TestCase extends \PHPUnit\Framework\TestCase {

	/**
	 * The `php -S` process, shared by the whole run.
	 *
	 * @var resource|null
	 */
	private static $server = null;

	/**
	 * Its address.
	 *
	 * @var string
	 */
	private static $address = '';

	/**
	 * The users: login => {id, basic}.
	 */
	protected static function users(): array {
		static $users = null;
		if ( null === $users ) {
			$users = json_decode( (string) file_get_contents( getenv( 'BBRT_TEST_TMP' ) . '/fixture.json' ), true )['users'];
		}
		return $users;
	}

	/**
	 * A user's id.
	 *
	 * @param string $login alice, bob or carol.
	 */
	protected static function uid( string $login ): int {
		return (int) self::users()[ $login ]['id'];
	}

	/**
	 * A string unique to this call, for keys and texts.
	 *
	 * @param string $prefix Shown first.
	 */
	protected static function unique( string $prefix ): string {
		return $prefix . '-' . bin2hex( random_bytes( 6 ) );
	}

	/**
	 * The thread between alice and bob, created once.
	 */
	protected static function alice_bob_thread(): int {
		static $thread = 0;
		if ( 0 === $thread ) {
			$thread = (int) messages_new_message(
				array(
					'sender_id'  => self::uid( 'alice' ),
					'recipients' => array( self::uid( 'bob' ) ),
					'subject'    => 'fixture',
					'content'    => 'the fixture thread',
				)
			);
		}
		return $thread;
	}

	/**
	 * How many messages hold this exact text.
	 *
	 * @param string $text The text.
	 */
	protected static function stored_count( string $text ): int {
		global $wpdb;
		$table = buddypress()->messages->table_name_messages;
		return (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$table} WHERE message = %s", $text ) ); // phpcs:ignore
	}

	/**
	 * POST /bbrt/v1/messages in this process, as a user (0: anonymous).
	 *
	 * @param int   $user_id The caller.
	 * @param array $body    The JSON body.
	 */
	protected static function send( int $user_id, array $body ): WP_REST_Response {
		wp_set_current_user( $user_id );
		$request = new WP_REST_Request( 'POST', '/bbrt/v1/messages' );
		$request->set_header( 'Content-Type', 'application/json' );
		$request->set_body( wp_json_encode( $body ) );
		$response = rest_do_request( $request );
		wp_set_current_user( 0 );
		return $response;
	}

	/**
	 * A response's error code (null for success).
	 *
	 * @param WP_REST_Response $response The response.
	 */
	protected static function code( WP_REST_Response $response ): ?string {
		$data = $response->get_data();
		return is_array( $data ) && isset( $data['code'] ) ? $data['code'] : null;
	}

	/**
	 * Starts the test site under `php -S` (once), with workers so requests run at once.
	 */
	protected static function server(): string {
		if ( null !== self::$server ) {
			return self::$address;
		}
		$probe = stream_socket_server( 'tcp://127.0.0.1:0' );
		$name  = stream_socket_get_name( $probe, false );
		fclose( $probe );
		self::$address = $name;
		$env           = array_merge(
			getenv(),
			array(
				'PHP_CLI_SERVER_WORKERS' => '4',
				'BBRT_TEST_HOST'         => $name,
			)
		);
		$log           = getenv( 'BBRT_TEST_TMP' ) . '/php-server.log';
		self::$server  = proc_open(
			array( PHP_BINARY, '-S', $name, '-t', ABSPATH, __DIR__ . '/router.php' ),
			array(
				0 => array( 'file', '/dev/null', 'r' ),
				1 => array( 'file', $log, 'a' ),
				2 => array( 'file', $log, 'a' ),
			),
			$pipes,
			__DIR__,
			$env
		);
		for ( $i = 0; $i < 100; $i++ ) {
			$probe = @stream_socket_client( 'tcp://' . $name, $errno, $errstr, 0.2 ); // phpcs:ignore Generic.PHP.NoSilencedErrors
			if ( $probe ) {
				fclose( $probe );
				break;
			}
			usleep( 50000 );
		}
		register_shutdown_function(
			static function () {
				// php -S's workers outlive their parent: stop them by its pid first, or every run
				// leaves PHP_CLI_SERVER_WORKERS processes listening.
				$status = proc_get_status( self::$server );
				if ( $status['running'] ) {
					exec( 'pkill -TERM -P ' . (int) $status['pid'] ); // phpcs:ignore Generic.PHP.ForbiddenFunctions.Found, WordPress.PHP.DiscouragedPHPFunctions.system_calls_exec -- a test harness's cleanup, a fixed command.
				}
				proc_terminate( self::$server );
				proc_close( self::$server );
			}
		);
		return self::$address;
	}

	/**
	 * Starts an HTTP request to the test site and returns at once; finish() reads it.
	 *
	 * @param string      $method  The method.
	 * @param string      $route   A REST route, e.g. /bbrt/v1/messages.
	 * @param string|null $login   The user (Application Password), null for anonymous.
	 * @param mixed       $body    The JSON body (null for none).
	 * @param array       $headers More headers, name => value.
	 * @return resource
	 */
	protected static function start( string $method, string $route, ?string $login, $body = null, array $headers = array() ) {
		$address = self::server();
		$socket  = stream_socket_client( 'tcp://' . $address, $errno, $errstr, 5 );
		$payload = null === $body ? '' : (string) wp_json_encode( $body );
		$lines   = array(
			$method . ' /?rest_route=' . rawurlencode( $route ) . ' HTTP/1.0',
			'Host: ' . $address,
			'Content-Type: application/json',
			'Content-Length: ' . strlen( $payload ),
			'Connection: close',
		);
		if ( null !== $login ) {
			$lines[] = 'Authorization: Basic ' . ( self::users()[ $login ]['basic'] ?? $login );
		}
		foreach ( $headers as $name => $value ) {
			$lines[] = $name . ': ' . $value;
		}
		fwrite( $socket, implode( "\r\n", $lines ) . "\r\n\r\n" . $payload );
		return $socket;
	}

	/**
	 * Reads a started request's response.
	 *
	 * @param resource $socket From start().
	 * @return array{status: int, headers: array<string, string>, body: mixed}
	 */
	protected static function finish( $socket ): array {
		stream_set_timeout( $socket, 60 );
		$raw = stream_get_contents( $socket );
		fclose( $socket );
		list( $head, $body ) = array_pad( explode( "\r\n\r\n", (string) $raw, 2 ), 2, '' );
		$lines   = explode( "\r\n", $head );
		$status  = (int) ( explode( ' ', (string) array_shift( $lines ) )[1] ?? 0 );
		$headers = array();
		foreach ( $lines as $line ) {
			$pair = explode( ':', $line, 2 );
			if ( 2 === count( $pair ) ) {
				$headers[ strtolower( trim( $pair[0] ) ) ] = trim( $pair[1] );
			}
		}
		return array(
			'status'  => $status,
			'headers' => $headers,
			'body'    => json_decode( $body, true ),
		);
	}

	/**
	 * One HTTP request to the test site.
	 *
	 * @param string      $method  The method.
	 * @param string      $route   A REST route.
	 * @param string|null $login   The user, or null.
	 * @param mixed       $body    The JSON body.
	 * @param array       $headers More headers.
	 */
	protected static function http( string $method, string $route, ?string $login, $body = null, array $headers = array() ): array {
		return self::finish( self::start( $method, $route, $login, $body, $headers ) );
	}
}
