<?php
/**
 * Site events: what happens on the site, reported to bbrt after the member's response.
 *
 * @package Bbrt
 */

namespace Bbrt;

defined( 'ABSPATH' ) || exit;

/**
 * BuddyBoss's hooks record events during the request; on `shutdown`, after the response has
 * been handed to the web server (`fastcgi_finish_request()`), each is POSTed to bbrt once,
 * signed, within a total time bound. Delivery is at most once: an event bbrt does not
 * answer 2xx is not retried, and bbrt's clients catch up through recovery (reading the
 * thread). After a failure the reporter pauses, so a bbrt that is down costs the site's
 * workers one bounded attempt per pause, not one per request.
 */
final class Events {

	/**
	 * The events recorded during this request, in order.
	 *
	 * @var array<int, array{id: string, type: string, data: array}>
	 */
	private static $queue = array();

	/**
	 * Threads created during this request, by message id (from the new-thread hook).
	 *
	 * @var array<int, true>
	 */
	private static $new_threads = array();

	/**
	 * Seconds one POST may take (connect included); `bbrt_event_timeout` filters it.
	 */
	const TIMEOUT = 2.0;

	/**
	 * Seconds all of a request's POSTs may take together; `bbrt_events_deadline` filters it.
	 */
	const DEADLINE = 3.0;

	/**
	 * Seconds the reporter pauses after a failed POST; `bbrt_events_pause` filters it.
	 */
	const PAUSE = 30;

	const PAUSE_TRANSIENT = 'bbrt_events_paused';

	/**
	 * The longest body sent, in bytes: bbrt refuses larger ones (413).
	 */
	const MAX_BODY_BYTES = 65536;

	/**
	 * Hooks BuddyBoss's actions (docs/wordpress.md, "Site events", lists them with their
	 * sources). Each records only when events are configured.
	 */
	public static function register(): void {
		add_action( 'messages_message_new_thread_save', array( self::class, 'on_new_thread' ), 99 );
		add_action( 'messages_message_sent', array( self::class, 'on_message_sent' ), 99 );
		add_action( 'bp_messages_thread_messages_after_update', array( self::class, 'on_messages_deleted' ), 99, 4 );
		add_action( 'messages_thread_mark_as_read', array( self::class, 'on_thread_read' ), 99, 2 );
		add_action( 'messages_delete_thread', array( self::class, 'on_thread_deleted_for_member' ), 99, 2 );
		add_action( 'bp_messages_message_delete_thread', array( self::class, 'on_thread_deleted' ), 99, 2 );
		foreach ( array( 'groups_join_group', 'groups_accept_invite', 'groups_unban_member' ) as $hook ) {
			add_action( $hook, array( self::class, 'on_group_member_added' ), 99, 2 );
		}
		add_action( 'groups_membership_accepted', array( self::class, 'on_group_membership_accepted' ), 99, 2 );
		foreach ( array( 'groups_leave_group', 'groups_remove_member', 'groups_ban_member' ) as $hook ) {
			add_action( $hook, array( self::class, 'on_group_member_removed' ), 99, 2 );
		}
		add_action( 'bp_suspend_hide_user', array( self::class, 'on_member_suspended' ), 99 );
		add_action( 'bp_suspend_unhide_user', array( self::class, 'on_member_unsuspended' ), 99 );
		add_action( 'bp_moderation_after_save', array( self::class, 'on_member_blocked' ), 99 );
		add_action( 'bb_moderation_after_delete', array( self::class, 'on_member_unblocked' ), 99 );
		add_action( 'deleted_user', array( self::class, 'on_member_deleted' ), 99 );
	}

	/**
	 * Where events go and the key that signs them, or null when events are off.
	 *
	 * @return array{url: string, kid: string, secret: string}|null
	 */
	public static function endpoint(): ?array {
		$url = (string) Settings::get( 'events_url' );
		if ( '' === $url && '' !== (string) Settings::get( 'url' ) ) {
			$url = untrailingslashit( (string) Settings::get( 'url' ) ) . '/site/events';
		}
		$signing = Keyring::signing_key( 'event_keys' );
		if ( '' === $url || null === $signing ) {
			return null;
		}
		return array(
			'url'    => $url,
			'kid'    => $signing[0],
			'secret' => $signing[1],
		);
	}

	/**
	 * Records an event when events are configured; the first one of a request schedules the
	 * sending.
	 *
	 * @param string   $type An event type (docs/wordpress.md lists them).
	 * @param callable $data Returns its fields (not called when events are off).
	 */
	public static function record( string $type, callable $data ): void {
		if ( null === self::endpoint() ) {
			return;
		}
		if ( ! self::$queue ) {
			// Last of all shutdown work, so the response is complete when it runs.
			add_action( 'shutdown', array( self::class, 'send_queued' ), PHP_INT_MAX );
		}
		self::$queue[] = array(
			'id'   => bin2hex( random_bytes( 16 ) ),
			'type' => $type,
			'data' => $data(),
		);
	}

	/**
	 * Takes the events recorded and not sent yet (tests read them this way).
	 *
	 * @return array<int, array{id: string, type: string, data: array}>
	 */
	public static function take(): array {
		$queue       = self::$queue;
		self::$queue = array();
		return $queue;
	}

	/**
	 * The request's body for one event: its exact bytes are what is signed.
	 *
	 * @param array{id: string, type: string, data: array} $event The event.
	 * @param int                                          $now   Unix seconds.
	 */
	public static function body( array $event, int $now ): string {
		return (string) wp_json_encode(
			array(
				'id'          => $event['id'],
				'type'        => $event['type'],
				'site'        => untrailingslashit( home_url() ),
				'occurred_at' => $now,
				'data'        => $event['data'],
			),
			JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
		);
	}

	/**
	 * The headers that sign a body.
	 *
	 * @param string $body     The exact bytes sent.
	 * @param string $event_id The event's id.
	 * @param string $kid      The key's id.
	 * @param string $secret   The key.
	 * @param int    $now      Unix seconds.
	 * @return array<string, string>
	 */
	public static function signed_headers( string $body, string $event_id, string $kid, string $secret, int $now ): array {
		$signed = 'bbrt-event-v1' . "\n" . $now . "\n" . $event_id . "\n" . $body;
		return array(
			'Content-Type'     => 'application/json',
			'X-BBRT-Key-Id'    => $kid,
			'X-BBRT-Timestamp' => (string) $now,
			'X-BBRT-Event-Id'  => $event_id,
			'X-BBRT-Signature' => 'v1=' . hash_hmac( 'sha256', $signed, $secret ),
		);
	}

	/**
	 * On `shutdown`: hands the response to the web server, then POSTs each event once.
	 */
	public static function send_queued(): void {
		$queue    = self::take();
		$endpoint = self::endpoint();
		if ( ! $queue || null === $endpoint ) {
			return;
		}
		ignore_user_abort( true );
		if ( function_exists( 'fastcgi_finish_request' ) ) {
			fastcgi_finish_request();
		} elseif ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
		}
		// Elsewhere (mod_php, php -S) the response waits for the sending: the bounds below
		// are then all it costs.
		if ( get_transient( self::PAUSE_TRANSIENT ) ) {
			do_action( 'bbrt_events_dropped', count( $queue ), 'paused' );
			return;
		}
		$timeout  = (float) apply_filters( 'bbrt_event_timeout', self::TIMEOUT );
		$deadline = microtime( true ) + (float) apply_filters( 'bbrt_events_deadline', self::DEADLINE );
		foreach ( $queue as $index => $event ) {
			$left = $deadline - microtime( true );
			if ( $left <= 0.05 ) {
				do_action( 'bbrt_events_dropped', count( $queue ) - $index, 'deadline' );
				return;
			}
			$now  = time();
			$body = self::body( $event, $now );
			if ( strlen( $body ) > self::MAX_BODY_BYTES ) {
				do_action( 'bbrt_events_dropped', 1, 'too large' );
				continue;
			}
			$response = wp_remote_post(
				$endpoint['url'],
				array(
					'timeout'     => min( $timeout, $left ),
					'redirection' => 0,
					'blocking'    => true,
					'headers'     => self::signed_headers( $body, $event['id'], $endpoint['kid'], $endpoint['secret'], $now ),
					'body'        => $body,
					'user-agent'  => 'bbrt-plugin/' . VERSION,
				)
			);
			$status = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
			do_action( 'bbrt_event_sent', $event, $status );
			if ( 0 === $status || $status >= 500 ) {
				// bbrt is down or overloaded: stop for a while rather than hold every worker.
				set_transient( self::PAUSE_TRANSIENT, 1, (int) apply_filters( 'bbrt_events_pause', self::PAUSE ) );
				do_action( 'bbrt_events_dropped', count( $queue ) - $index - 1, 'paused' );
				return;
			}
		}
	}

	/**
	 * The recipients' unread counts, as BuddyBoss keeps them: per thread and the inbox total.
	 *
	 * @param int   $thread_id The thread.
	 * @param int[] $user_ids  The users.
	 * @return array<int, array{user_id: int, thread_unread: int, inbox_unread: int}>
	 */
	private static function unread( int $thread_id, array $user_ids ): array {
		global $wpdb;
		$table = buddypress()->messages->table_name_recipients;
		$out   = array();
		foreach ( $user_ids as $user_id ) {
			// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
			$thread = (int) $wpdb->get_var( $wpdb->prepare( "SELECT unread_count FROM {$table} WHERE thread_id = %d AND user_id = %d", $thread_id, $user_id ) );
			$out[]  = array(
				'user_id'       => (int) $user_id,
				'thread_unread' => $thread,
				'inbox_unread'  => function_exists( 'messages_get_unread_count' ) ? (int) messages_get_unread_count( $user_id ) : $thread,
			);
		}
		return $out;
	}

	/**
	 * Everyone in a thread who has not deleted it, sender included, in id order.
	 *
	 * @param int $thread_id The thread.
	 * @return int[]
	 */
	private static function participants( int $thread_id ): array {
		global $wpdb;
		$table = buddypress()->messages->table_name_recipients;
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
		return array_map( 'intval', $wpdb->get_col( $wpdb->prepare( "SELECT user_id FROM {$table} WHERE thread_id = %d AND is_deleted = 0 ORDER BY user_id", $thread_id ) ) );
	}

	/**
	 * The idempotency key bbrt sent the message with, if it did (so bbrt knows its own).
	 *
	 * @param int $message_id The message.
	 */
	private static function client_key( int $message_id ): ?string {
		$key = function_exists( 'bp_messages_get_meta' ) ? bp_messages_get_meta( $message_id, Messages_Route::META_KEY, true ) : '';
		return is_string( $key ) && '' !== $key ? $key : null;
	}

	/**
	 * The text as BuddyBoss's REST message object gives it (`prepare_message_for_response`):
	 * `raw` is plain text, `rendered` the HTML after its display filters.
	 *
	 * @param object $message BP_Messages_Message.
	 * @return array{raw: string, rendered: string}
	 */
	private static function message_text( $message ): array {
		$stored   = (string) $message->message;
		$rendered = (string) apply_filters( 'bp_get_the_thread_message_content', $stored, (int) $message->id );
		return array(
			'raw'      => wp_strip_all_tags( $stored ),
			'rendered' => (string) preg_replace( '#(<p></p>)#', '<p><br></p>', $rendered ),
		);
	}

	/**
	 * `messages_message_new_thread_save`: marks the message as a thread's first.
	 *
	 * @param object $message BP_Messages_Message.
	 */
	public static function on_new_thread( $message ): void {
		self::$new_threads[ (int) $message->id ] = true;
	}

	/**
	 * `messages_message_sent` at 99 (after BuddyBoss attached media at 10): any send path.
	 *
	 * @param object $message BP_Messages_Message.
	 */
	public static function on_message_sent( $message ): void {
		self::record(
			'message.sent',
			static function () use ( $message ) {
				$thread_id    = (int) $message->thread_id;
				$sender_id    = (int) $message->sender_id;
				$participants = self::participants( $thread_id );
				return array(
					'thread_id'         => $thread_id,
					'message_id'        => (int) $message->id,
					'sender_id'         => $sender_id,
					'new_thread'        => isset( self::$new_threads[ (int) $message->id ] ),
					'subject'           => array(
						'raw'      => (string) $message->subject,
						'rendered' => (string) apply_filters( 'bp_get_message_thread_subject', (string) $message->subject ),
					),
					'message'           => self::message_text( $message ),
					'date_sent'         => gmdate( 'Y-m-d\\TH:i:s\\Z', (int) strtotime( $message->date_sent . ' UTC' ) ),
					'client_message_id' => self::client_key( (int) $message->id ),
					'participants'      => $participants,
					'unread'            => self::unread( $thread_id, array_values( array_diff( $participants, array( $sender_id ) ) ) ),
				);
			}
		);
	}

	/**
	 * `bp_messages_thread_messages_after_update`: a member deleted the thread for
	 * themselves, and BuddyBoss blanked their messages in it for everyone.
	 *
	 * @param int   $thread_id          The thread.
	 * @param int[] $message_ids        All of its messages.
	 * @param int   $user_id            The member.
	 * @param int[] $update_message_ids Their messages, now blanked.
	 */
	public static function on_messages_deleted( $thread_id, $message_ids, $user_id, $update_message_ids ): void {
		if ( empty( $update_message_ids ) ) {
			return;
		}
		self::record(
			'messages.deleted',
			static function () use ( $thread_id, $user_id, $update_message_ids ) {
				return array(
					'thread_id'    => (int) $thread_id,
					'user_id'      => (int) $user_id,
					'message_ids'  => array_map( 'intval', array_values( (array) $update_message_ids ) ),
					'participants' => self::participants( (int) $thread_id ),
				);
			}
		);
	}

	/**
	 * `messages_thread_mark_as_read` (only when the member had unread messages).
	 *
	 * @param int $thread_id The thread.
	 * @param int $user_id   The reader.
	 */
	public static function on_thread_read( $thread_id, $user_id = 0 ): void {
		$user_id = (int) ( $user_id ? $user_id : get_current_user_id() );
		self::record(
			'thread.read',
			static function () use ( $thread_id, $user_id ) {
				return array(
					'thread_id'    => (int) $thread_id,
					'user_id'      => $user_id,
					'participants' => self::participants( (int) $thread_id ),
					'unread'       => self::unread( (int) $thread_id, array( $user_id ) ),
				);
			}
		);
	}

	/**
	 * `messages_delete_thread`: deleted for one member (soft: the next reply in it brings
	 * it back for them).
	 *
	 * @param int|int[] $thread_ids The threads.
	 * @param int       $user_id    The member.
	 */
	public static function on_thread_deleted_for_member( $thread_ids, $user_id ): void {
		foreach ( array_map( 'intval', (array) $thread_ids ) as $thread_id ) {
			self::record(
				'thread.deleted_for_member',
				static function () use ( $thread_id, $user_id ) {
					return array(
						'thread_id' => $thread_id,
						'user_id'   => (int) $user_id,
						'unread'    => self::unread( $thread_id, array( (int) $user_id ) ),
					);
				}
			);
		}
	}

	/**
	 * `bp_messages_message_delete_thread`: the whole thread is gone (its rows already are).
	 *
	 * @param int   $thread_id  The thread.
	 * @param array $recipients Its recipient rows before the delete, keyed by user id.
	 */
	public static function on_thread_deleted( $thread_id, $recipients ): void {
		self::record(
			'thread.deleted',
			static function () use ( $thread_id, $recipients ) {
				$ids = array();
				foreach ( (array) $recipients as $key => $recipient ) {
					$ids[] = (int) ( is_object( $recipient ) && isset( $recipient->user_id ) ? $recipient->user_id : $key );
				}
				$ids = array_values( array_unique( $ids ) );
				sort( $ids );
				return array(
					'thread_id'    => (int) $thread_id,
					'participants' => $ids,
				);
			}
		);
	}

	/**
	 * Joined, unbanned (`( $group_id, $user_id )`), invite accepted (`( $user_id,
	 * $group_id, $inviter_id )`): BuddyBoss (at 10) added them to the group's thread.
	 *
	 * @param int $first  The group (the user for groups_accept_invite).
	 * @param int $second The user (the group for groups_accept_invite).
	 */
	public static function on_group_member_added( $first, $second ): void {
		$accept = 'groups_accept_invite' === current_action();
		self::participants_changed( 'participants.added', (int) ( $accept ? $second : $first ), (int) ( $accept ? $first : $second ) );
	}

	/**
	 * `groups_membership_accepted` ( $user_id, $group_id, $accepted ).
	 *
	 * @param int $user_id  The member.
	 * @param int $group_id The group.
	 */
	public static function on_group_membership_accepted( $user_id, $group_id ): void {
		self::participants_changed( 'participants.added', (int) $group_id, (int) $user_id );
	}

	/**
	 * Left, removed, banned ( $group_id, $user_id ): BuddyBoss (at 10) took them out of the
	 * group's thread.
	 *
	 * @param int $group_id The group.
	 * @param int $user_id  The member.
	 */
	public static function on_group_member_removed( $group_id, $user_id ): void {
		self::participants_changed( 'participants.removed', (int) $group_id, (int) $user_id );
	}

	/**
	 * One participants event, for a group that has a message thread.
	 *
	 * @param string $type     participants.added or participants.removed.
	 * @param int    $group_id The group.
	 * @param int    $user_id  The member.
	 */
	private static function participants_changed( string $type, int $group_id, int $user_id ): void {
		$thread_id = function_exists( 'groups_get_groupmeta' ) ? (int) groups_get_groupmeta( $group_id, 'group_message_thread' ) : 0;
		if ( $thread_id <= 0 ) {
			return;
		}
		self::record(
			$type,
			static function () use ( $thread_id, $group_id, $user_id ) {
				return array(
					'thread_id'    => $thread_id,
					'group_id'     => $group_id,
					'user_ids'     => array( $user_id ),
					'participants' => self::participants( $thread_id ),
				);
			}
		);
	}

	/**
	 * An event that names one member.
	 *
	 * @param string $type    The type.
	 * @param int    $user_id The member.
	 */
	private static function member_event( string $type, $user_id ): void {
		self::record(
			$type,
			static function () use ( $user_id ) {
				return array( 'user_id' => (int) $user_id );
			}
		);
	}

	/**
	 * `bp_suspend_hide_user`: BuddyBoss suspended a member.
	 *
	 * @param int $user_id The member.
	 */
	public static function on_member_suspended( $user_id ): void {
		self::member_event( 'member.suspended', $user_id );
	}

	/**
	 * `bp_suspend_unhide_user`: the suspension was lifted.
	 *
	 * @param int $user_id The member.
	 */
	public static function on_member_unsuspended( $user_id ): void {
		self::member_event( 'member.unsuspended', $user_id );
	}

	/**
	 * `deleted_user`: the account is gone.
	 *
	 * @param int $user_id The member.
	 */
	public static function on_member_deleted( $user_id ): void {
		self::member_event( 'member.deleted', $user_id );
	}

	/**
	 * `bp_moderation_after_save` with item type `user`: a member blocked another.
	 *
	 * @param object $moderation BP_Moderation.
	 */
	public static function on_member_blocked( $moderation ): void {
		self::block_event( 'member.blocked', $moderation );
	}

	/**
	 * `bb_moderation_after_delete` with item type `user`: the block was lifted.
	 *
	 * @param object $moderation BP_Moderation.
	 */
	public static function on_member_unblocked( $moderation ): void {
		self::block_event( 'member.unblocked', $moderation );
	}

	/**
	 * A block event (reports of members have another item type and are not events).
	 *
	 * @param string $type       The type.
	 * @param object $moderation BP_Moderation.
	 */
	private static function block_event( string $type, $moderation ): void {
		if ( ! is_object( $moderation ) || 'user' !== ( $moderation->item_type ?? '' ) ) {
			return;
		}
		self::record(
			$type,
			static function () use ( $moderation ) {
				return array(
					'user_id'         => (int) ( $moderation->user_id ?? 0 ),
					'blocked_user_id' => (int) $moderation->item_id,
				);
			}
		);
	}
}
