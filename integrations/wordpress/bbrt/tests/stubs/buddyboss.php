<?php
/**
 * Test-only stand-in for the parts of BuddyBoss Platform the plugin uses, with the
 * behaviour shared/reference/buddyboss-api.md documents (§1.2, §1.3, §4, §6):
 * messages_new_message() and its save hooks, thread access, message meta, and the
 * REST controller's POST /messages and GET /messages/{id}. BuddyBoss is not available to CI.
 *
 * @package Bbrt\Tests
 */

// phpcs:disable Generic.Files.OneObjectStructurePerFile

defined( 'ABSPATH' ) || exit;

/**
 * BuddyBoss's global, reduced to the table names the plugin reads.
 */
function buddypress() {
	global $wpdb;
	static $bp = null;
	if ( null === $bp ) {
		$bp           = new stdClass();
		$bp->messages = (object) array(
			'table_name_messages'   => $wpdb->base_prefix . 'bp_messages_messages',
			'table_name_recipients' => $wpdb->base_prefix . 'bp_messages_recipients',
			'table_name_meta'       => $wpdb->base_prefix . 'bp_messages_meta',
		);
	}
	return $bp;
}

/**
 * BuddyBoss caches the current user once, on `init` (BP_Core::setup_globals), and never
 * again: with an Application Password resolved only later, it stays 0 (reference §3.2).
 */
function bp_loggedin_user_id() {
	return (int) ( buddypress()->loggedin_user_id ?? 0 );
}

add_action(
	'init',
	static function () {
		buddypress()->loggedin_user_id = get_current_user_id();
	},
	10
);

/**
 * Only the Messages component exists here.
 *
 * @param string $component A component.
 */
function bp_is_active( $component = '' ) {
	return 'messages' === $component;
}

/**
 * Whether the request is a member's messages page (BuddyBoss's own test before it loads
 * its messages script). The tests choose: $GLOBALS['bbrt_test_messages_page'].
 */
function bp_is_user_messages() {
	return ! empty( $GLOBALS['bbrt_test_messages_page'] );
}

/**
 * BuddyBoss's namespace.
 */
function bp_rest_namespace() {
	return 'buddyboss';
}

/**
 * BuddyBoss's REST version.
 */
function bp_rest_version() {
	return 'v1';
}

/**
 * Creates BuddyBoss's message tables (the columns the stand-in uses).
 */
function bbrt_test_install_buddyboss_tables() {
	global $wpdb;
	$t = buddypress()->messages;
	$wpdb->query( "CREATE TABLE IF NOT EXISTS {$t->table_name_messages} ( id bigint(20) NOT NULL AUTO_INCREMENT, thread_id bigint(20) NOT NULL, sender_id bigint(20) NOT NULL, subject varchar(200) NOT NULL, message longtext NOT NULL, date_sent datetime NOT NULL, PRIMARY KEY (id), KEY sender_id (sender_id), KEY thread_id (thread_id) ) {$wpdb->get_charset_collate()}" );
	$wpdb->query( "CREATE TABLE IF NOT EXISTS {$t->table_name_recipients} ( id bigint(20) NOT NULL AUTO_INCREMENT, user_id bigint(20) NOT NULL, thread_id bigint(20) NOT NULL, unread_count int(10) NOT NULL DEFAULT 0, sender_only tinyint(1) NOT NULL DEFAULT 0, is_deleted tinyint(1) NOT NULL DEFAULT 0, PRIMARY KEY (id), KEY user_id (user_id), KEY thread_id (thread_id) ) {$wpdb->get_charset_collate()}" );
	$wpdb->query( "CREATE TABLE IF NOT EXISTS {$t->table_name_meta} ( id bigint(20) NOT NULL AUTO_INCREMENT, message_id bigint(20) NOT NULL, meta_key varchar(255) DEFAULT NULL, meta_value longtext, PRIMARY KEY (id), KEY message_id (message_id), KEY meta_key (meta_key(191)) ) {$wpdb->get_charset_collate()}" );
}

/**
 * The thread id when the thread has messages, else 0 (as BuddyBoss).
 *
 * @param int $thread_id A thread.
 */
function messages_is_valid_thread( $thread_id ) {
	global $wpdb;
	$t = buddypress()->messages;
	return (int) $wpdb->get_var( $wpdb->prepare( "SELECT thread_id FROM {$t->table_name_messages} WHERE thread_id = %d LIMIT 1", $thread_id ) );
}

/**
 * Access: a recipient row for the user with is_deleted = 0 (§1.2).
 *
 * @param int $thread_id A thread.
 * @param int $user_id   A user; 0 means the logged-in user.
 */
function messages_check_thread_access( $thread_id, $user_id = 0 ) {
	global $wpdb;
	$user_id = $user_id ? $user_id : get_current_user_id();
	$t       = buddypress()->messages;
	return (int) $wpdb->get_var( $wpdb->prepare( "SELECT id FROM {$t->table_name_recipients} WHERE thread_id = %d AND user_id = %d AND is_deleted = 0", $thread_id, $user_id ) );
}

/**
 * messages_mark_thread_read() (BP_Messages_Thread::mark_as_read): zeroes the member's unread
 * count in the thread and, only when there was one, fires `messages_thread_mark_as_read`.
 *
 * @param int $thread_id A thread.
 * @param int $user_id   A user; 0 means the logged-in user.
 * @return int|false The rows changed.
 */
function messages_mark_thread_read( $thread_id, $user_id = 0 ) {
	global $wpdb;
	$user_id = $user_id ? $user_id : bp_loggedin_user_id();
	$t       = buddypress()->messages;
	$changed = $wpdb->query( $wpdb->prepare( "UPDATE {$t->table_name_recipients} SET unread_count = 0 WHERE thread_id = %d AND user_id = %d AND unread_count > 0", $thread_id, $user_id ) );
	if ( $changed ) {
		do_action( 'messages_thread_mark_as_read', $thread_id, $user_id, $changed );
	}
	return $changed;
}

/**
 * Message meta.
 *
 * @param int    $message_id A message.
 * @param string $meta_key   The key.
 * @param mixed  $meta_value The value.
 */
function bp_messages_update_meta( $message_id, $meta_key, $meta_value ) {
	global $wpdb;
	$t = buddypress()->messages;
	$wpdb->delete( $t->table_name_meta, array( 'message_id' => $message_id, 'meta_key' => $meta_key ) );
	return (bool) $wpdb->insert( $t->table_name_meta, array( 'message_id' => $message_id, 'meta_key' => $meta_key, 'meta_value' => $meta_value ) );
}

/**
 * Message meta.
 *
 * @param int    $message_id A message.
 * @param string $meta_key   The key.
 */
function bp_messages_get_meta( $message_id, $meta_key ) {
	global $wpdb;
	$t = buddypress()->messages;
	return $wpdb->get_var( $wpdb->prepare( "SELECT meta_value FROM {$t->table_name_meta} WHERE message_id = %d AND meta_key = %s", $message_id, $meta_key ) );
}

/**
 * BP_Messages_Message, reduced: send() fires the hooks in BuddyBoss's order and stores
 * nothing when a before_save hook empties the recipients (§6).
 */
class BP_Messages_Message {
	public $id;
	public $thread_id;
	public $sender_id;
	public $subject;
	public $message;
	public $date_sent;
	public $recipients = array();

	/**
	 * Saves the message.
	 *
	 * @return int|false The message id.
	 */
	public function send() {
		global $wpdb;
		$t = buddypress()->messages;
		do_action_ref_array( 'messages_message_before_save', array( &$this ) );
		if ( empty( $this->recipients ) ) {
			return false;
		}
		$new_thread = empty( $this->thread_id );
		if ( $new_thread ) {
			$this->thread_id = (int) $wpdb->get_var( "SELECT MAX(thread_id) FROM {$t->table_name_messages}" ) + 1;
		}
		$wpdb->insert(
			$t->table_name_messages,
			array(
				'thread_id' => $this->thread_id,
				'sender_id' => $this->sender_id,
				'subject'   => $this->subject,
				'message'   => $this->message,
				'date_sent' => $this->date_sent,
			)
		);
		$this->id = (int) $wpdb->insert_id;
		if ( $new_thread ) {
			foreach ( $this->recipients as $recipient ) {
				$wpdb->insert( $t->table_name_recipients, array( 'user_id' => $recipient, 'thread_id' => $this->thread_id, 'unread_count' => 1 ) );
			}
			$wpdb->insert( $t->table_name_recipients, array( 'user_id' => $this->sender_id, 'thread_id' => $this->thread_id ) );
			do_action_ref_array( 'messages_message_new_thread_save', array( &$this ) );
		} else {
			$wpdb->query( $wpdb->prepare( "UPDATE {$t->table_name_recipients} SET unread_count = unread_count + 1, is_deleted = 0 WHERE thread_id = %d AND user_id != %d", $this->thread_id, $this->sender_id ) );
		}
		do_action_ref_array( 'messages_message_after_save', array( &$this ) );
		return $this->id;
	}
}

/**
 * messages_new_message(): a reply to `thread_id`, or a new thread to `recipients` that is
 * appended to the sender's existing thread with exactly those recipients (§1.3).
 *
 * @param array $args sender_id, thread_id, recipients, subject, content, date_sent.
 * @return int|false The thread id.
 */
function messages_new_message( $args = array() ) {
	global $wpdb;
	$t                   = buddypress()->messages;
	$message             = new BP_Messages_Message();
	$message->sender_id  = (int) ( $args['sender_id'] ?? bp_loggedin_user_id() );
	$message->thread_id  = (int) ( $args['thread_id'] ?? 0 );
	$message->subject    = (string) ( $args['subject'] ?? '' );
	$message->message    = wp_kses_post( (string) ( $args['content'] ?? '' ) );
	$message->date_sent  = $args['date_sent'] ?? current_time( 'mysql', true );
	if ( ! $message->sender_id || '' === trim( $message->message ) ) {
		return false;
	}
	if ( $message->thread_id ) {
		$message->recipients = array_map( 'intval', $wpdb->get_col( $wpdb->prepare( "SELECT user_id FROM {$t->table_name_recipients} WHERE thread_id = %d AND user_id != %d", $message->thread_id, $message->sender_id ) ) );
	} else {
		$recipients = array_values( array_diff( wp_parse_id_list( $args['recipients'] ?? array() ), array( $message->sender_id ) ) );
		foreach ( $recipients as $recipient ) {
			if ( ! get_userdata( $recipient ) ) {
				return false;
			}
		}
		$message->recipients = $recipients;
		$everyone            = $recipients;
		$everyone[]          = $message->sender_id;
		sort( $everyone );
		foreach ( $wpdb->get_col( $wpdb->prepare( "SELECT thread_id FROM {$t->table_name_recipients} WHERE user_id = %d AND is_deleted = 0", $message->sender_id ) ) as $thread_id ) {
			$members = array_map( 'intval', $wpdb->get_col( $wpdb->prepare( "SELECT user_id FROM {$t->table_name_recipients} WHERE thread_id = %d", $thread_id ) ) );
			sort( $members );
			if ( $members === $everyone ) {
				$message->thread_id = (int) $thread_id;
				break;
			}
		}
	}
	if ( ! $message->send() ) {
		return false;
	}
	do_action_ref_array( 'messages_message_sent', array( &$message ) );
	return $message->thread_id;
}

/**
 * BP_REST_Messages_Endpoint, reduced to POST /messages and GET /messages/{id} with
 * BuddyBoss's codes, texts, statuses and the thread object's main fields (§1.8).
 */
class BP_REST_Messages_Endpoint extends WP_REST_Controller {

	/**
	 * Routes.
	 */
	public function register_routes() {
		register_rest_route(
			'buddyboss/v1',
			'/messages',
			array(
				'methods'             => WP_REST_Server::CREATABLE,
				'callback'            => array( $this, 'create_item' ),
				'permission_callback' => array( $this, 'create_item_permissions_check' ),
			)
		);
		register_rest_route(
			'buddyboss/v1',
			'/messages/(?P<id>[\d]+)',
			array(
				'methods'             => WP_REST_Server::READABLE,
				'callback'            => array( $this, 'get_item' ),
				'permission_callback' => array( $this, 'get_item_permissions_check' ),
				'args'                => array(
					'before' => array(
						'type'   => 'string',
						'format' => 'date-time',
					),
				),
			)
		);
	}

	/**
	 * §1.3 permission: the access of `sender_id` (or the caller) to a reply's thread.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public function create_item_permissions_check( $request ) {
		if ( ! is_user_logged_in() ) {
			return new WP_Error( 'bp_rest_authorization_required', 'Sorry, you need to be logged in to create a message.', array( 'status' => rest_authorization_required_code() ) );
		}
		$thread_id = (int) $request->get_param( 'id' );
		if ( $thread_id ) {
			$sender_id = (int) $request->get_param( 'sender_id' );
			$sender_id = $sender_id ? $sender_id : bp_loggedin_user_id();
			if ( ! $sender_id || ! messages_is_valid_thread( $thread_id ) || ! messages_check_thread_access( $thread_id, $sender_id ) ) {
				return new WP_Error( 'bp_rest_authorization_required', 'Sorry, you are not allowed to perform this action.', array( 'status' => rest_authorization_required_code() ) );
			}
		}
		return true;
	}

	/**
	 * §1.3 create: validation in BuddyBoss's order, 500 for any failure inside, 200 with
	 * the thread in edit context.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public function create_item( $request ) {
		$thread_id = (int) $request->get_param( 'id' );
		if ( ! $thread_id && empty( $request->get_param( 'recipients' ) ) ) {
			return new WP_Error( 'bp_rest_empty_recipients', 'Please, enter recipients user IDs.', array( 'status' => 400 ) );
		}
		$content = (string) $request->get_param( 'message' );
		if ( '' === trim( $content ) ) {
			return new WP_Error( 'bp_rest_messages_empty_message', 'Sorry, Your message cannot be empty.', array( 'status' => 400 ) );
		}
		if ( '0' === $content ) {
			$content = '<p>0</p>';
		}
		$sender_id = (int) $request->get_param( 'sender_id' );
		$thread    = messages_new_message(
			array(
				'sender_id'  => $sender_id ? $sender_id : bp_loggedin_user_id(),
				'thread_id'  => $thread_id,
				'recipients' => $request->get_param( 'recipients' ),
				'subject'    => (string) ( $request->get_param( 'subject' ) ?? 'No Subject' ),
				'content'    => $content,
			)
		);
		if ( ! $thread ) {
			return new WP_Error( 'bp_rest_messages_create_failed', 'There was a problem sending your message.', array( 'status' => 500 ) );
		}
		return new WP_REST_Response( $this->thread_object( (int) $thread, null ), 200 );
	}

	/**
	 * §1.2 permission: 401 anonymous, 403 for non-participants and unknown threads.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public function get_item_permissions_check( $request ) {
		if ( ! is_user_logged_in() ) {
			return new WP_Error( 'bp_rest_authorization_required', 'Sorry, you are not allowed to see this thread.', array( 'status' => 401 ) );
		}
		if ( ! messages_check_thread_access( (int) $request['id'], get_current_user_id() ) ) {
			return new WP_Error( 'bp_rest_authorization_required', 'Sorry, you are not allowed to see this thread.', array( 'status' => 403 ) );
		}
		return true;
	}

	/**
	 * §1.2 read.
	 *
	 * @param WP_REST_Request $request The request.
	 */
	public function get_item( $request ) {
		return new WP_REST_Response( $this->thread_object( (int) $request['id'], $request['before'] ), 200 );
	}

	/**
	 * The thread object's main fields; messages oldest first, 10 per page ending at `before`.
	 *
	 * @param int         $thread_id The thread.
	 * @param string|null $before    The page's newest date_sent.
	 */
	private function thread_object( $thread_id, $before ) {
		global $wpdb;
		$t      = buddypress()->messages;
		$before = $before ? str_replace( 'T', ' ', substr( $before, 0, 19 ) ) : '9999-12-31 23:59:59';
		$rows   = array_reverse( $wpdb->get_results( $wpdb->prepare( "SELECT * FROM {$t->table_name_messages} WHERE thread_id = %d AND date_sent <= %s ORDER BY date_sent DESC, id DESC LIMIT 10", $thread_id, $before ) ) );
		$last   = $wpdb->get_row( $wpdb->prepare( "SELECT * FROM {$t->table_name_messages} WHERE thread_id = %d ORDER BY id DESC LIMIT 1", $thread_id ) );
		$total  = (int) $wpdb->get_var( $wpdb->prepare( "SELECT COUNT(*) FROM {$t->table_name_messages} WHERE thread_id = %d", $thread_id ) );
		return array(
			'id'             => $thread_id,
			'message_id'     => (int) $last->id,
			'last_sender_id' => (int) $last->sender_id,
			'subject'        => array( 'raw' => $last->subject, 'rendered' => $last->subject ),
			'message'        => array( 'raw' => $last->message, 'rendered' => wpautop( $last->message ) ),
			'date'           => mysql_to_rfc3339( $last->date_sent ),
			'current_user'   => bp_loggedin_user_id(),
			// Keyed by user id, as BuddyBoss's thread object has them: bbrt reads the
			// participants from here.
			'recipients'     => (object) array_column(
				array_map(
					static function ( $row ) {
						return array(
							'id'           => (int) $row->id,
							'user_id'      => (int) $row->user_id,
							'thread_id'    => (int) $row->thread_id,
							'unread_count' => (int) $row->unread_count,
							'sender_only'  => (int) $row->sender_only,
							'is_deleted'   => 0,
						);
					},
					$wpdb->get_results( $wpdb->prepare( "SELECT * FROM {$t->table_name_recipients} WHERE thread_id = %d AND is_deleted = 0", $thread_id ) )
				),
				null,
				'user_id'
			),
			'messages_count' => $total,
			'messages'       => array_map(
				static function ( $row ) {
					return array(
						'id'        => (int) $row->id,
						'thread_id' => (int) $row->thread_id,
						'sender_id' => (int) $row->sender_id,
						'message'   => array( 'raw' => wp_strip_all_tags( $row->message ), 'rendered' => wpautop( $row->message ) ),
						'date_sent' => mysql_to_rfc3339( $row->date_sent ),
					);
				},
				$rows
			),
		);
	}
}

add_action(
	'rest_api_init',
	static function () {
		( new BP_REST_Messages_Endpoint() )->register_routes();
	},
	5
);

/**
 * BuddyBoss's moderation: whether a member is suspended (here a user meta the tests set;
 * BuddyBoss keeps its own table). Suspension does not end the member's login sessions.
 *
 * @param int $user_id A user.
 */
function bp_moderation_is_user_suspended( $user_id ) {
	return (bool) get_user_meta( $user_id, 'bbrt_test_suspended', true );
}

/**
 * The member's unread messages over all their threads (BuddyBoss's inbox count).
 *
 * @param int $user_id A user.
 */
function messages_get_unread_count( $user_id = 0 ) {
	global $wpdb;
	$t = buddypress()->messages;
	return (int) $wpdb->get_var( $wpdb->prepare( "SELECT SUM(unread_count) FROM {$t->table_name_recipients} WHERE user_id = %d AND is_deleted = 0", $user_id ) );
}

/**
 * Group meta, reduced to `group_message_thread` (an option the tests set: group id => thread).
 *
 * @param int    $group_id A group.
 * @param string $meta_key The key.
 */
function groups_get_groupmeta( $group_id, $meta_key = '' ) {
	$threads = get_option( 'bbrt_test_group_threads', array() );
	return 'group_message_thread' === $meta_key && isset( $threads[ $group_id ] ) ? $threads[ $group_id ] : '';
}
