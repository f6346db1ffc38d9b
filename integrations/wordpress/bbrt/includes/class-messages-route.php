<?php
/**
 * `POST /wp-json/bbrt/v1/messages`: BuddyBoss's send, stored exactly once per key.
 *
 * @package Bbrt
 */

namespace Bbrt;

use WP_Error;
use WP_REST_Request;
use WP_REST_Response;
use WP_REST_Server;

defined( 'ABSPATH' ) || exit;

/**
 * BuddyBoss's `POST /buddyboss/v1/messages` plus `client_message_id`. The request whose
 * pending row wins the unique (sender, key) index delegates to BuddyBoss's own REST
 * controller, so validation, errors and the 200 body are BuddyBoss's; every other request
 * with that key answers the stored message, a conflict, or "still in progress".
 */
final class Messages_Route {

	const REST_NAMESPACE = 'bbrt/v1';
	const META_KEY       = 'bbrt_client_message_id';

	/**
	 * The same alphabet and length bbrt accepts for `clientMessageId`.
	 */
	const KEY_PATTERN = '/^[A-Za-z0-9._~:@+-]{1,128}$/';

	/**
	 * The parameters that decide "the same request": BuddyBoss's create parameters.
	 */
	const FINGERPRINT_PARAMS = array( 'id', 'message', 'subject', 'recipients', 'send_at', 'bp_media_ids', 'bp_videos', 'bp_documents', 'media_gif' );

	/**
	 * The create this request owns while BuddyBoss runs it, for the save hooks.
	 *
	 * @var array{sender: int, key: string, owner: string, message_id: int, thread_id: int, lost: bool}|null
	 */
	private static $creating = null;

	/**
	 * Registers the route (only with BuddyBoss's Messages and the feature on) and the save
	 * hooks that tie the stored message to its key.
	 */
	public static function register(): void {
		if ( ! Settings::feature( 'idempotent_sends' ) || ! buddyboss_messages_available() ) {
			return;
		}
		register_rest_route(
			self::REST_NAMESPACE,
			'/messages',
			array(
				'methods'             => WP_REST_Server::CREATABLE,
				'callback'            => array( self::class, 'create' ),
				'permission_callback' => array( self::class, 'permission' ),
				'args'                => array(
					'client_message_id' => array(
						'description'       => __( 'The client\'s key for this message: a retry with the same key never stores a second message.', 'bbrt' ),
						'type'              => 'string',
						'required'          => true,
						'validate_callback' => array( self::class, 'validate_key' ),
					),
					'sender_id'         => array(
						'description'       => __( 'Refused: the message is always sent as the authenticated user.', 'bbrt' ),
						'validate_callback' => array( self::class, 'refuse_sender_id' ),
					),
				),
			)
		);
		// Last, after any other hook that may still stop the save (and after the site's own
		// sleeps), so the ownership check is the final word before the INSERT.
		add_action( 'messages_message_before_save', array( self::class, 'before_save' ), PHP_INT_MAX );
		// First, so the key is on the message before anything slow runs after the save.
		add_action( 'messages_message_after_save', array( self::class, 'after_save' ), PHP_INT_MIN );
	}

	/**
	 * Only an authenticated user may send; BuddyBoss's own code and text.
	 *
	 * @return true|WP_Error
	 */
	public static function permission() {
		if ( is_user_logged_in() ) {
			return true;
		}
		return new WP_Error(
			'bp_rest_authorization_required',
			__( 'Sorry, you need to be logged in to create a message.', 'bbrt' ),
			array( 'status' => rest_authorization_required_code() )
		);
	}

	/**
	 * Validates `client_message_id`.
	 *
	 * @param mixed $value The parameter.
	 * @return true|WP_Error
	 */
	public static function validate_key( $value ) {
		if ( is_string( $value ) && preg_match( self::KEY_PATTERN, $value ) ) {
			return true;
		}
		return new WP_Error(
			'rest_invalid_param',
			__( 'client_message_id must be 1 to 128 characters from A-Z a-z 0-9 . _ ~ : @ + -.', 'bbrt' )
		);
	}

	/**
	 * `sender_id` is refused whatever its value: BuddyBoss would post as that user.
	 *
	 * @return WP_Error
	 */
	public static function refuse_sender_id() {
		return new WP_Error(
			'rest_invalid_param',
			__( 'sender_id is not accepted: the message is sent as the authenticated user.', 'bbrt' )
		);
	}

	/**
	 * The route's callback.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public static function create( WP_REST_Request $request ) {
		$sender_id = get_current_user_id();
		$key       = (string) $request->get_param( 'client_message_id' );
		$params    = self::forwarded_params( $request );
		$thread_id = isset( $params['id'] ) ? absint( $params['id'] ) : 0;

		if ( $thread_id > 0 && ! self::can_access_thread( $thread_id, $sender_id ) ) {
			return self::forbidden( __( 'Sorry, you are not allowed to perform this action.', 'bbrt' ) );
		}

		$fingerprint = self::fingerprint( $params );
		$owner       = bin2hex( random_bytes( 16 ) );
		$claim       = Send_Keys::claim( $sender_id, $key, $fingerprint, $owner );
		if ( null === $claim ) {
			return self::store_unavailable();
		}
		if ( false === $claim ) {
			$outcome = self::await_other_request( $sender_id, $key, $fingerprint, $owner );
			if ( true !== $outcome ) {
				return $outcome;
			}
		}
		return self::create_as_owner( $sender_id, $key, $owner, $params );
	}

	/**
	 * Another request holds the key: answer its message when it completes, a conflict when
	 * the parameters differ, "in progress" when it does not complete within the wait. A row
	 * pending for longer than the stale time is resolved by reading the thread: its message
	 * is answered if it was stored, else this request takes the row over.
	 *
	 * @param int    $sender_id   The sender.
	 * @param string $key         The key.
	 * @param string $fingerprint This request's parameters, hashed.
	 * @param string $owner       This request's owner token.
	 * @return true|WP_REST_Response|WP_Error True when this request now owns the key.
	 */
	private static function await_other_request( int $sender_id, string $key, string $fingerprint, string $owner ) {
		/**
		 * How long a request waits for another request creating the same key, in ms.
		 *
		 * @param int $wait_ms Default 2000.
		 */
		$wait_ms = (int) apply_filters( 'bbrt_in_progress_wait_ms', 2000 );
		/**
		 * After how many seconds a pending row whose creator never completed is resolved.
		 *
		 * @param int $seconds Default 60.
		 */
		$stale_seconds = (int) apply_filters( 'bbrt_pending_stale_seconds', 60 );
		$deadline      = microtime( true ) + $wait_ms / 1000;

		while ( true ) {
			$row = Send_Keys::find( $sender_id, $key );
			if ( null === $row ) {
				// Its creator failed and released it: try to own it now.
				$claim = Send_Keys::claim( $sender_id, $key, $fingerprint, $owner );
				if ( null === $claim ) {
					return self::store_unavailable();
				}
				if ( true === $claim ) {
					return true;
				}
				continue;
			}
			if ( ! hash_equals( $row->fingerprint, $fingerprint ) ) {
				return new WP_Error(
					'idempotency_conflict',
					__( 'This client_message_id was already used for a message with other parameters.', 'bbrt' ),
					array( 'status' => 409 )
				);
			}
			if ( Send_Keys::STATE_COMPLETE === $row->state ) {
				return self::replay( (int) $row->message_id, (int) $row->thread_id, $sender_id );
			}
			if ( time() - (int) $row->claimed_at >= $stale_seconds ) {
				$stored = self::find_stored( $sender_id, $key );
				if ( $stored ) {
					Send_Keys::complete( $sender_id, $key, (int) $stored->id, (int) $stored->thread_id );
					return self::replay( (int) $stored->id, (int) $stored->thread_id, $sender_id );
				}
				if ( Send_Keys::take_over( $row, $owner ) ) {
					return true;
				}
				continue;
			}
			if ( microtime( true ) >= $deadline ) {
				return self::in_progress();
			}
			usleep( 100000 );
		}
	}

	/**
	 * This request owns the key: BuddyBoss's controller creates the message, the save hooks
	 * tie it to the key.
	 *
	 * @param int                  $sender_id The sender.
	 * @param string               $key       The key.
	 * @param string               $owner     This request's owner token.
	 * @param array<string, mixed> $params    BuddyBoss's parameters.
	 * @return WP_REST_Response|WP_Error
	 */
	private static function create_as_owner( int $sender_id, string $key, string $owner, array $params ) {
		/**
		 * Fires when this request owns the key, just before BuddyBoss creates the message.
		 *
		 * @param int    $sender_id The sender.
		 * @param string $key       The client_message_id.
		 */
		do_action( 'bbrt_before_create', $sender_id, $key );

		self::$creating = array(
			'sender'     => $sender_id,
			'key'        => $key,
			'owner'      => $owner,
			'message_id' => 0,
			'thread_id'  => 0,
			'lost'       => false,
		);
		// Something in the create may end the request (exit, a fatal error): a key whose
		// message was not saved is freed then, so a retry creates instead of waiting.
		register_shutdown_function( array( self::class, 'release_if_unsaved' ) );
		$inner = new WP_REST_Request( 'POST', '/' . self::buddyboss_namespace() . '/messages' );
		// The sender is ours to say, never the client's (BuddyBoss checks access for it).
		$inner->set_body_params( array_merge( $params, array( 'sender_id' => $sender_id ) ) );
		try {
			$response = rest_ensure_response( rest_do_request( $inner ) );
		} finally {
			$created        = self::$creating;
			self::$creating = null;
		}

		if ( $created['message_id'] > 0 ) {
			if ( $response->is_error() ) {
				// Stored, then something after the save failed: the truth is "stored".
				return self::replay( $created['message_id'], $created['thread_id'], $sender_id, false );
			}
			return self::with_headers( $response, $created['message_id'], false );
		}
		Send_Keys::release( $sender_id, $key, $owner );
		if ( $created['lost'] ) {
			return self::in_progress();
		}
		return $response;
	}

	/**
	 * At shutdown, if the request ended inside the create before a message was saved.
	 */
	public static function release_if_unsaved(): void {
		$creating = self::$creating;
		if ( null !== $creating && 0 === $creating['message_id'] ) {
			self::$creating = null;
			Send_Keys::release( $creating['sender'], $creating['key'], $creating['owner'] );
		}
	}

	/**
	 * Before BuddyBoss's INSERT: a request that lost its row to a takeover stops the save
	 * (BuddyBoss stores nothing for a message without recipients).
	 *
	 * @param object $message The BP_Messages_Message being saved.
	 */
	public static function before_save( $message ): void {
		$creating = self::$creating;
		if ( null === $creating || (int) $message->sender_id !== $creating['sender'] ) {
			return;
		}
		if ( ! Send_Keys::still_owned( $creating['sender'], $creating['key'], $creating['owner'] ) ) {
			self::$creating['lost'] = true;
			$message->recipients    = array();
		}
	}

	/**
	 * After BuddyBoss's INSERT: the key goes on the message and the row completes at once,
	 * so a retry finds the message even if this request never answers.
	 *
	 * @param object $message The BP_Messages_Message just saved.
	 */
	public static function after_save( $message ): void {
		$creating = self::$creating;
		if ( null === $creating || $creating['message_id'] > 0 || (int) $message->sender_id !== $creating['sender'] ) {
			return;
		}
		self::$creating['message_id'] = (int) $message->id;
		self::$creating['thread_id']  = (int) $message->thread_id;
		bp_messages_update_meta( (int) $message->id, self::META_KEY, $creating['key'] );
		Send_Keys::complete( $creating['sender'], $creating['key'], (int) $message->id, (int) $message->thread_id );
	}

	/**
	 * The stored message's thread, as BuddyBoss's POST would have answered it: the thread
	 * object in `edit` context, its page of messages ending at that message.
	 *
	 * @param int  $message_id The stored message.
	 * @param int  $thread_id  Its thread.
	 * @param int  $sender_id  The caller, whose access is checked again.
	 * @param bool $replayed   Whether an earlier request stored it.
	 * @return WP_REST_Response|WP_Error
	 */
	private static function replay( int $message_id, int $thread_id, int $sender_id, bool $replayed = true ) {
		if ( ! self::can_access_thread( $thread_id, $sender_id ) ) {
			return self::forbidden( __( 'Sorry, you are not allowed to see this thread.', 'bbrt' ) );
		}
		$query = array( 'context' => 'edit' );
		$sent  = self::message_date( $message_id );
		if ( null !== $sent ) {
			$query['before'] = $sent;
		}
		$inner = new WP_REST_Request( 'GET', '/' . self::buddyboss_namespace() . '/messages/' . $thread_id );
		$inner->set_query_params( $query );
		return self::with_headers( rest_ensure_response( rest_do_request( $inner ) ), $message_id, $replayed );
	}

	/**
	 * Adds the headers that tell bbrt which message this is and whether it was stored now.
	 *
	 * @param WP_REST_Response $response   BuddyBoss's response.
	 * @param int              $message_id The message.
	 * @param bool             $replayed   Whether an earlier request stored it.
	 */
	private static function with_headers( WP_REST_Response $response, int $message_id, bool $replayed ): WP_REST_Response {
		$response->header( 'X-BBRT-Message-Id', (string) $message_id );
		$response->header( 'X-BBRT-Replayed', $replayed ? 'true' : 'false' );
		return $response;
	}

	/**
	 * Whether the user may post to and read the thread (BuddyBoss's own check).
	 *
	 * @param int $thread_id The thread.
	 * @param int $user_id   The user.
	 */
	private static function can_access_thread( int $thread_id, int $user_id ): bool {
		return $thread_id > 0
			&& messages_is_valid_thread( $thread_id )
			&& messages_check_thread_access( $thread_id, $user_id );
	}

	/**
	 * The sender's message carrying the key, read from the messages table.
	 *
	 * @param int    $sender_id The sender.
	 * @param string $key       The key.
	 * @return object|null With `id` and `thread_id`.
	 */
	private static function find_stored( int $sender_id, string $key ) {
		global $wpdb;
		$messages = buddypress()->messages->table_name_messages;
		$meta     = buddypress()->messages->table_name_meta;
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- table names only.
		$sql = "SELECT m.id, m.thread_id FROM {$messages} m INNER JOIN {$meta} mm ON mm.message_id = m.id WHERE m.sender_id = %d AND mm.meta_key = %s AND mm.meta_value = BINARY %s ORDER BY m.id LIMIT 1";
		$row = $wpdb->get_row( $wpdb->prepare( $sql, $sender_id, self::META_KEY, $key ) ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared
		return $row ? $row : null;
	}

	/**
	 * A message's `date_sent` (GMT), or null when it no longer exists.
	 *
	 * @param int $message_id The message.
	 */
	private static function message_date( int $message_id ): ?string {
		global $wpdb;
		$messages = buddypress()->messages->table_name_messages;
		// phpcs:ignore WordPress.DB.PreparedSQL.InterpolatedNotPrepared -- a table name only.
		$date = $wpdb->get_var( $wpdb->prepare( "SELECT date_sent FROM {$messages} WHERE id = %d", $message_id ) );
		return is_string( $date ) ? $date : null;
	}

	/**
	 * The parameters handed to BuddyBoss: everything the client sent except our key and
	 * WordPress's own underscore parameters (`_fields` still shapes our response).
	 *
	 * @param WP_REST_Request $request The request.
	 * @return array<string, mixed>
	 */
	private static function forwarded_params( WP_REST_Request $request ): array {
		$json   = $request->get_json_params();
		$params = array_merge(
			(array) $request->get_query_params(),
			(array) $request->get_body_params(),
			is_array( $json ) ? $json : array()
		);
		foreach ( array_keys( $params ) as $name ) {
			if ( in_array( $name, array( 'client_message_id', 'sender_id', 'rest_route', 'context' ), true ) || str_starts_with( (string) $name, '_' ) ) {
				unset( $params[ $name ] );
			}
		}
		return $params;
	}

	/**
	 * A hash of the parameters that make a send: a retry must repeat them.
	 *
	 * @param array<string, mixed> $params BuddyBoss's parameters.
	 */
	private static function fingerprint( array $params ): string {
		$same = array();
		foreach ( self::FINGERPRINT_PARAMS as $name ) {
			if ( ! array_key_exists( $name, $params ) ) {
				continue;
			}
			$value = $params[ $name ];
			if ( 'id' === $name ) {
				$value = absint( $value );
			} elseif ( 'recipients' === $name ) {
				$value = wp_parse_id_list( $value );
				sort( $value );
			} elseif ( is_scalar( $value ) ) {
				$value = (string) $value;
			}
			$same[ $name ] = $value;
		}
		if ( 0 === ( $same['id'] ?? 0 ) ) {
			unset( $same['id'] );
		}
		return hash( 'sha256', (string) wp_json_encode( $same ) );
	}

	/**
	 * BuddyBoss's REST namespace (`buddyboss/v1` unless filtered).
	 */
	private static function buddyboss_namespace(): string {
		if ( function_exists( 'bp_rest_namespace' ) && function_exists( 'bp_rest_version' ) ) {
			return bp_rest_namespace() . '/' . bp_rest_version();
		}
		return 'buddyboss/v1';
	}

	/**
	 * BuddyBoss's refusal, with its code and the caller-dependent status.
	 *
	 * @param string $message The text.
	 */
	private static function forbidden( string $message ): WP_Error {
		return new WP_Error( 'bp_rest_authorization_required', $message, array( 'status' => rest_authorization_required_code() ) );
	}

	/**
	 * The key table could not be read or written.
	 */
	private static function store_unavailable(): WP_Error {
		return new WP_Error(
			'bbrt_store_unavailable',
			__( 'The message could not be sent right now; nothing was stored. Retry shortly.', 'bbrt' ),
			array(
				'status'    => 503,
				'retryable' => true,
			)
		);
	}

	/**
	 * Another request is creating this key (or took it over from this one): retry shortly.
	 */
	private static function in_progress(): WP_REST_Response {
		$response = rest_convert_error_to_response(
			new WP_Error(
				'bbrt_send_in_progress',
				__( 'A message with this client_message_id is still being stored; retry shortly.', 'bbrt' ),
				array(
					'status'    => 409,
					'retryable' => true,
				)
			)
		);
		$response->header( 'Retry-After', '1' );
		return $response;
	}
}
