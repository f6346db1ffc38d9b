<?php
/**
 * Runs tests/http-cases.json against the plugin under `php -S`. bbrt's fake site runs the
 * same file; the format is in docs/wordpress.md ("The HTTP cases").
 *
 * @package Bbrt\Tests
 */

namespace Bbrt\Tests;

/**
 * One PHPUnit test per case.
 */
final class HttpCasesTest extends TestCase {

	/**
	 * The cases.
	 */
	public function cases(): array {
		$file  = json_decode( (string) file_get_contents( __DIR__ . '/http-cases.json' ), true );
		$cases = array();
		foreach ( $file['cases'] as $case ) {
			$cases[ $case['name'] ] = array( $case );
		}
		return $cases;
	}

	/**
	 * One case's steps, in order, sharing the saved values.
	 *
	 * @dataProvider cases
	 * @param array $case The case.
	 */
	public function test_case( array $case ): void {
		$vars = array(
			'thread' => self::alice_bob_thread(),
			'run'    => bin2hex( random_bytes( 6 ) ),
		);
		foreach ( array_keys( self::users() ) as $login ) {
			$vars[ 'uid:' . $login ] = self::uid( $login );
		}
		foreach ( $case['steps'] as $n => $step ) {
			$where = $case['name'] . ', step ' . ( $n + 1 );
			$login = $step['as'];
			if ( null !== $login && 'invalid' === ( $step['credential'] ?? '' ) ) {
				$login = base64_encode( $login . ':not the password' );
			}
			$response = self::http(
				$step['method'],
				$step['path'],
				$login,
				array_key_exists( 'body', $step ) ? self::fill( $step['body'], $vars ) : null
			);
			$expect = $step['expect'];
			$this->assertSame( $expect['status'], $response['status'], $where . ': ' . wp_json_encode( $response['body'] ) );
			foreach ( $expect['headers'] ?? array() as $name => $value ) {
				$this->assertSame( self::text( self::fill( $value, $vars ) ), $response['headers'][ strtolower( $name ) ] ?? null, "$where: header $name" );
			}
			foreach ( $expect['json'] ?? array() as $path => $value ) {
				list( $found, $actual ) = self::value_at( $response['body'], $path );
				$this->assertTrue( $found, "$where: $path is present" );
				$this->assertSame( self::text( self::fill( $value, $vars ) ), self::text( $actual ), "$where: $path" );
			}
			foreach ( $expect['present'] ?? array() as $path ) {
				$this->assertTrue( self::value_at( $response['body'], $path )[0], "$where: $path is present" );
			}
			foreach ( $expect['contains'] ?? array() as $path => $value ) {
				list( $found, $list ) = self::value_at( $response['body'], $path );
				$this->assertTrue( $found && is_array( $list ) && in_array( self::fill( $value, $vars ), $list, true ), "$where: $path contains $value" );
			}
			foreach ( $step['save'] ?? array() as $name => $source ) {
				list( $kind, $what ) = explode( ':', $source, 2 );
				$vars[ 'saved:' . $name ] = 'header' === $kind ? ( $response['headers'][ strtolower( $what ) ] ?? null ) : self::value_at( $response['body'], $what )[1];
			}
		}
	}

	/**
	 * Substitutes placeholders: a string that is one placeholder becomes its value (a
	 * number stays a number); inside a longer string each is replaced by its text.
	 *
	 * @param mixed $value A JSON value.
	 * @param array $vars  The placeholders' values.
	 * @return mixed
	 */
	private static function fill( $value, array $vars ) {
		if ( is_array( $value ) ) {
			return array_map( static fn( $item ) => self::fill( $item, $vars ), $value );
		}
		if ( ! is_string( $value ) ) {
			return $value;
		}
		if ( preg_match( '/^\{([^{}]+)\}$/', $value, $m ) && array_key_exists( $m[1], $vars ) ) {
			return $vars[ $m[1] ];
		}
		return preg_replace_callback( '/\{([^{}]+)\}/', static fn( $m ) => array_key_exists( $m[1], $vars ) ? (string) $vars[ $m[1] ] : $m[0], $value );
	}

	/**
	 * A scalar as the format compares it: its JSON text, strings without quotes.
	 *
	 * @param mixed $value A value.
	 */
	private static function text( $value ): string {
		return is_string( $value ) ? $value : (string) wp_json_encode( $value );
	}

	/**
	 * The value at a dotted path; `-1` is a list's last element.
	 *
	 * @param mixed  $data The decoded body.
	 * @param string $path E.g. `messages.-1.id`.
	 * @return array{0: bool, 1: mixed}
	 */
	private static function value_at( $data, string $path ): array {
		foreach ( explode( '.', $path ) as $part ) {
			if ( ! is_array( $data ) ) {
				return array( false, null );
			}
			if ( '-1' === $part && array_is_list( $data ) && $data ) {
				$part = count( $data ) - 1;
			}
			if ( ! array_key_exists( $part, $data ) ) {
				return array( false, null );
			}
			$data = $data[ $part ];
		}
		return array( true, $data );
	}
}
