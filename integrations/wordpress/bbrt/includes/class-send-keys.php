<?php
/**
 * The table that decides which request creates the message for a (sender, key).
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * One row per (sender, client_message_id), unique: the request whose INSERT succeeds owns
 * the key and is the only one that may create the message. The row is written "pending"
 * before the create and "complete" with the message id as soon as the message is saved.
 */
final class Send_Keys {

	const SCHEMA_VERSION = 1;
	const SCHEMA_OPTION  = 'bbrt_schema_version';
	const PURGE_HOOK     = 'bbrt_purge_send_keys';
	const STATE_PENDING  = 'pending';
	const STATE_COMPLETE = 'complete';

	/**
	 * The table's name.
	 */
	public static function table(): string {
		global $wpdb;
		return $wpdb->base_prefix . 'bbrt_send_keys';
	}

	/**
	 * Creates the table. Keys are compared byte for byte (ascii_bin): `Abc` and `abc` are
	 * two keys.
	 */
	public static function install(): void {
		global $wpdb;
		$table   = self::table();
		$charset = $wpdb->get_charset_collate();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
		$wpdb->query(
			"CREATE TABLE IF NOT EXISTS {$table} (
				id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
				sender_id bigint(20) unsigned NOT NULL,
				client_key varchar(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
				fingerprint char(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
				state varchar(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
				owner char(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
				message_id bigint(20) unsigned DEFAULT NULL,
				thread_id bigint(20) unsigned DEFAULT NULL,
				claimed_at bigint(20) unsigned NOT NULL,
				created_at bigint(20) unsigned NOT NULL,
				PRIMARY KEY  (id),
				UNIQUE KEY sender_key (sender_id, client_key),
				KEY created_at (created_at)
			) {$charset}"
		);
		// Autoloaded: every request's maybe_upgrade() reads it without a query of its own.
		update_option( self::SCHEMA_OPTION, self::SCHEMA_VERSION, true );
	}

	/**
	 * Installs the table when the plugin was updated in place (no activation hook runs).
	 */
	public static function maybe_upgrade(): void {
		if ( wp_installing() ) {
			return;
		}
		if ( (int) get_option( self::SCHEMA_OPTION, 0 ) < self::SCHEMA_VERSION ) {
			self::install();
		}
	}

	/**
	 * Activation: the table and the daily purge.
	 */
	public static function activate(): void {
		self::install();
		self::ensure_purge_scheduled();
	}

	/**
	 * Deactivation stops the purge; the table stays until uninstall.
	 */
	public static function deactivate(): void {
		wp_clear_scheduled_hook( self::PURGE_HOOK );
	}

	/**
	 * Schedules the daily purge if it is not.
	 */
	public static function ensure_purge_scheduled(): void {
		if ( wp_installing() ) {
			return;
		}
		if ( ! wp_next_scheduled( self::PURGE_HOOK ) ) {
			wp_schedule_event( time() + HOUR_IN_SECONDS, 'daily', self::PURGE_HOOK );
		}
	}

	/**
	 * Deletes the rows older than the retention (`key_retention_days`, 7 by default): a
	 * retry that comes later than that is a new message.
	 *
	 * @param int|null $now The current Unix time (tests pass their own).
	 * @return int The number of rows deleted.
	 */
	public static function purge( $now = null ): int {
		global $wpdb;
		$now    = null === $now ? time() : (int) $now;
		$cutoff = $now - (int) Settings::get( 'key_retention_days' ) * DAY_IN_SECONDS;
		$table  = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
		$deleted = $wpdb->query( $wpdb->prepare( "DELETE FROM {$table} WHERE created_at < %d", $cutoff ) );
		return (int) $deleted;
	}

	/**
	 * Tries to own the key: inserts a pending row. False when a row already exists.
	 *
	 * @param int    $sender_id   The authenticated user.
	 * @param string $key         The client_message_id.
	 * @param string $fingerprint The request's parameters, hashed.
	 * @param string $owner       A random token naming this request.
	 * @return bool|null True when this request owns the key, false when a row for the key
	 *                   exists (or just existed), null on any other database error.
	 */
	public static function claim( int $sender_id, string $key, string $fingerprint, string $owner ) {
		global $wpdb;
		$now        = time();
		$suppressed = $wpdb->suppress_errors( true );
		$inserted   = $wpdb->insert(
			self::table(),
			array(
				'sender_id'   => $sender_id,
				'client_key'  => $key,
				'fingerprint' => $fingerprint,
				'state'       => self::STATE_PENDING,
				'owner'       => $owner,
				'claimed_at'  => $now,
				'created_at'  => $now,
			),
			array( '%d', '%s', '%s', '%s', '%s', '%d', '%d' )
		);
		$error = (string) $wpdb->last_error;
		$wpdb->suppress_errors( $suppressed );
		if ( 1 === $inserted ) {
			return true;
		}
		// The row may be gone again already (its creator failed): the caller re-reads.
		return false !== stripos( $error, 'Duplicate entry' ) ? false : null;
	}

	/**
	 * The row for (sender, key), read from the database (never a cache).
	 *
	 * @param int    $sender_id The sender.
	 * @param string $key       The client_message_id.
	 * @return object|null
	 */
	public static function find( int $sender_id, string $key ) {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
		$row = $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$table} WHERE sender_id = %d AND client_key = %s", $sender_id, $key ) );
		return $row ? $row : null;
	}

	/**
	 * Takes over a stale pending row: succeeds only if nobody else took it since it was read.
	 *
	 * @param object $row   The stale row as read.
	 * @param string $owner The new owner's token.
	 */
	public static function take_over( $row, string $owner ): bool {
		global $wpdb;
		$updated = $wpdb->update(
			self::table(),
			array(
				'owner'      => $owner,
				'claimed_at' => time(),
			),
			array(
				'id'    => (int) $row->id,
				'owner' => $row->owner,
				'state' => self::STATE_PENDING,
			),
			array( '%s', '%d' ),
			array( '%d', '%s', '%s' )
		);
		return 1 === $updated;
	}

	/**
	 * Whether this owner still holds the pending row (checked again just before the INSERT,
	 * so a request that lost its row to a takeover never creates).
	 *
	 * @param int    $sender_id The sender.
	 * @param string $key       The client_message_id.
	 * @param string $owner     The owner's token.
	 */
	public static function still_owned( int $sender_id, string $key, string $owner ): bool {
		$row = self::find( $sender_id, $key );
		return $row && self::STATE_PENDING === $row->state && hash_equals( $row->owner, $owner );
	}

	/**
	 * Marks the row complete with the stored message.
	 *
	 * @param int    $sender_id  The sender.
	 * @param string $key        The client_message_id.
	 * @param int    $message_id The stored message.
	 * @param int    $thread_id  Its thread.
	 */
	public static function complete( int $sender_id, string $key, int $message_id, int $thread_id ): void {
		global $wpdb;
		$wpdb->update(
			self::table(),
			array(
				'state'      => self::STATE_COMPLETE,
				'message_id' => $message_id,
				'thread_id'  => $thread_id,
			),
			array(
				'sender_id'  => $sender_id,
				'client_key' => $key,
			),
			array( '%s', '%d', '%d' ),
			array( '%d', '%s' )
		);
	}

	/**
	 * Releases a pending row whose create failed, so that a retry may try again.
	 *
	 * @param int    $sender_id The sender.
	 * @param string $key       The client_message_id.
	 * @param string $owner     The owner's token.
	 */
	public static function release( int $sender_id, string $key, string $owner ): void {
		global $wpdb;
		$wpdb->delete(
			self::table(),
			array(
				'sender_id'  => $sender_id,
				'client_key' => $key,
				'owner'      => $owner,
				'state'      => self::STATE_PENDING,
			),
			array( '%d', '%s', '%s', '%s' )
		);
	}

	/**
	 * Drops the table (uninstall).
	 */
	public static function drop(): void {
		global $wpdb;
		$table = self::table();
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
		$wpdb->query( "DROP TABLE IF EXISTS {$table}" );
		delete_option( self::SCHEMA_OPTION );
	}
}
