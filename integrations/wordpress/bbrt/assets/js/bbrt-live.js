/*
 * bbrt live website: keeps BuddyBoss's own messages UI current from bbrt's events.
 *
 * Plain ES2017, no build step. The core (connection, event routing, typing) knows nothing
 * of the DOM or of BuddyBoss: everything page-specific goes through an adapter object, so
 * the core runs in Node's tests with a stand-in adapter and a fake WebSocket. The
 * BuddyBoss adapter at the bottom is the only code that touches BuddyBoss
 * (docs/wordpress.md, "The live website", says which of its functions it calls and why).
 *
 * Nothing here may break the page: bbrt unreachable, a ticket refused or a frame that is
 * not understood leave BuddyBoss's page as it would be without this script.
 */
( function ( root, factory ) {
	'use strict';
	const api = factory();
	if ( typeof module === 'object' && module.exports ) {
		module.exports = api;
	} else {
		root.BbrtLive = api;
		api.boot( root );
	}
}( typeof self !== 'undefined' ? self : this, function () {
	'use strict';

	// The frames that change what the inbox shows (unread counts, excerpts, the list)...
	const REFRESHING_TYPES = [ 'message', 'read', 'deleted', 'thread_deleted', 'thread_left' ];
	// ...and those that change what an open thread shows (a read changes only counts).
	const THREAD_CHANGING_TYPES = [ 'message', 'deleted', 'thread_deleted', 'thread_left' ];
	// bbrt coalesces typing to one per user and thread every 2 s and expires it after 5 s
	// (docs/protocol.md): sending more often is wasted, showing longer would be stale.
	const TYPING_SEND_EVERY_MS = 2000;
	const TYPING_IDLE_MS = 3000;
	const TYPING_SHOWN_MS = 5000;
	// At most one refresh per this window: the first event refreshes at once, the events
	// that follow it (a message, then its read) share one refresh at the window's end.
	const REFRESH_COALESCE_MS = 250;
	const FOLLOW_WITHIN_PX = 200;
	const BACKOFF_BASE_MS = 1000;
	const BACKOFF_CAP_MS = 60000;
	// A connection that stayed open this long was a success: the next failure starts over.
	const STABLE_AFTER_MS = 10000;

	/**
	 * The delay before reconnect attempt `attempt` (0-based): exponential, capped, with
	 * full jitter so that a bbrt restart is not met by every browser at the same instant.
	 */
	function backoffDelay( attempt, random ) {
		const ceiling = Math.min( BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow( 2, attempt ) );
		return Math.floor( ceiling / 2 + random() * ceiling / 2 );
	}

	/** bbrt's WebSocket URL from the plugin's `bbrt URL` setting (http(s) or ws(s)). */
	function websocketUrl( bbrtUrl, ticket ) {
		const url = new URL( bbrtUrl );
		if ( url.protocol === 'http:' ) {
			url.protocol = 'ws:';
		} else if ( url.protocol === 'https:' ) {
			url.protocol = 'wss:';
		}
		url.searchParams.set( 'ticket', ticket );
		return url.toString();
	}

	/** Ids are always strings on bbrt's wire; BuddyBoss mixes numbers and strings. */
	function idString( id ) {
		return id === undefined || id === null || id === '' ? null : String( id );
	}

	/**
	 * One connection to bbrt, identified with a fresh ticket each time it opens, rejoining
	 * its threads after every reconnect. `env` supplies WebSocket, fetch, timers and random
	 * (the browser's or the tests').
	 *
	 * config: { bbrtUrl, ticketUrl, nonce, userId }
	 * listener: { onFrame( frame ), onOpen(), onClose() }
	 */
	function createConnection( config, env, listener ) {
		const threads = new Set();
		let socket = null;
		let attempt = 0;
		let retryTimer = null;
		let openedAt = 0;
		let stopped = false;
		let requestSeq = 0;

		function nextRequestId( prefix ) {
			requestSeq += 1;
			return prefix + '-' + requestSeq;
		}

		function sendNow( frame ) {
			if ( socket && socket.readyState === 1 ) {
				socket.send( JSON.stringify( frame ) );
				return true;
			}
			return false;
		}

		async function fetchTicket() {
			const response = await env.fetch( config.ticketUrl, {
				method: 'POST',
				credentials: 'same-origin',
				headers: { 'X-WP-Nonce': config.nonce },
			} );
			if ( ! response.ok ) {
				throw new Error( 'ticket ' + response.status );
			}
			const body = await response.json();
			if ( ! body || typeof body.ticket !== 'string' ) {
				throw new Error( 'ticket answer without a ticket' );
			}
			return body.ticket;
		}

		function scheduleRetry() {
			if ( stopped || retryTimer !== null ) {
				return;
			}
			const delay = backoffDelay( attempt, env.random );
			attempt += 1;
			retryTimer = env.setTimeout( function () {
				retryTimer = null;
				open();
			}, delay );
		}

		async function open() {
			if ( stopped ) {
				return;
			}
			let ticket;
			try {
				ticket = await fetchTicket();
			} catch ( e ) {
				scheduleRetry();
				return;
			}
			if ( stopped ) {
				return;
			}
			let ws;
			try {
				ws = new env.WebSocket( websocketUrl( config.bbrtUrl, ticket ) );
			} catch ( e ) {
				scheduleRetry();
				return;
			}
			socket = ws;
			ws.onopen = function () {
				openedAt = env.now();
				sendNow( { type: 'user_connected', userId: config.userId, requestId: nextRequestId( 'hello' ) } );
				threads.forEach( function ( threadId ) {
					sendNow( { type: 'join_thread', threadId: threadId, requestId: nextRequestId( 'join' ) } );
				} );
				listener.onOpen();
			};
			ws.onmessage = function ( event ) {
				let frame;
				try {
					frame = JSON.parse( event.data );
				} catch ( e ) {
					return;
				}
				if ( frame && typeof frame === 'object' && typeof frame.type === 'string' ) {
					listener.onFrame( frame );
				}
			};
			ws.onerror = function () {};
			ws.onclose = function () {
				if ( socket !== ws ) {
					return;
				}
				socket = null;
				if ( openedAt && env.now() - openedAt >= STABLE_AFTER_MS ) {
					attempt = 0;
				}
				openedAt = 0;
				listener.onClose();
				scheduleRetry();
			};
		}

		return {
			start: function () {
				open();
			},
			stop: function () {
				stopped = true;
				if ( retryTimer !== null ) {
					env.clearTimeout( retryTimer );
					retryTimer = null;
				}
				if ( socket ) {
					const ws = socket;
					socket = null;
					ws.close( 1000 );
				}
			},
			join: function ( threadId ) {
				const id = idString( threadId );
				if ( id === null || threads.has( id ) ) {
					return;
				}
				threads.add( id );
				sendNow( { type: 'join_thread', threadId: id, requestId: nextRequestId( 'join' ) } );
			},
			leave: function ( threadId ) {
				const id = idString( threadId );
				if ( id === null || ! threads.delete( id ) ) {
					return;
				}
				sendNow( { type: 'leave_thread', threadId: id } );
			},
			typing: function ( threadId, typing ) {
				const id = idString( threadId );
				if ( id !== null ) {
					sendNow( { type: 'typing', threadId: id, typing: typing } );
				}
			},
			isOpen: function () {
				return socket !== null && socket.readyState === 1;
			},
		};
	}

	/**
	 * What one page does with bbrt's frames and its member's typing. `transport` is a
	 * connection (createConnection) or a SharedWorker port wrapper with the same
	 * join/leave/typing methods; the page calls `handleFrame` with every frame it receives.
	 *
	 * adapter: {
	 *   openThreadId() -> id or null,
	 *   refreshThread(), refreshInbox(),
	 *   participantName( threadId, userId ) -> string or null,
	 *   showTyping( threadId, text or null ),
	 *   onThreadChange( callback ), onComposerInput( callback ), onReplySent( callback ),
	 * }
	 */
	function createLivePage( options ) {
		const adapter = options.adapter;
		let transport = options.transport;
		const env = options.env;
		const userId = idString( options.userId );
		const strings = options.strings || {};
		let joined = null;
		let refreshTimer = null;
		let lastRefreshAt = -Infinity;
		let threadDue = false;
		let inboxDue = false;
		// threadId -> Map( userId -> expiry timer )
		const typers = new Map();
		let typingSentAt = -Infinity;
		let typingThread = null;
		let idleTimer = null;

		function safely( fn ) {
			try {
				return fn();
			} catch ( e ) {
				return undefined;
			}
		}

		function followOpenThread() {
			const open = idString( safely( adapter.openThreadId ) );
			if ( open === joined ) {
				return;
			}
			// The previous thread stays joined: its events still refresh the inbox.
			joined = open;
			if ( open !== null ) {
				transport.join( open );
			}
		}

		function flushRefresh() {
			refreshTimer = null;
			lastRefreshAt = env.now();
			const thread = threadDue;
			const inbox = inboxDue;
			threadDue = false;
			inboxDue = false;
			if ( thread ) {
				safely( adapter.refreshThread );
			}
			if ( inbox ) {
				safely( adapter.refreshInbox );
			}
		}

		function requestRefresh( threadId, type ) {
			inboxDue = true;
			if ( THREAD_CHANGING_TYPES.indexOf( type ) !== -1 && threadId !== null && threadId === idString( safely( adapter.openThreadId ) ) ) {
				threadDue = true;
			}
			if ( refreshTimer === null ) {
				const since = env.now() - lastRefreshAt;
				refreshTimer = env.setTimeout( flushRefresh, since >= REFRESH_COALESCE_MS ? 0 : REFRESH_COALESCE_MS - since );
			}
		}

		function typingText( threadId ) {
			const who = typers.get( threadId );
			if ( ! who || who.size === 0 ) {
				return null;
			}
			const names = [];
			who.forEach( function ( timer, typerId ) {
				const name = safely( function () {
					return adapter.participantName( threadId, typerId );
				} );
				names.push( typeof name === 'string' && name !== '' ? name : ( strings.someone || 'Someone' ) );
			} );
			if ( names.length === 1 ) {
				return ( strings.isTyping || '%s is typing…' ).replace( '%s', names[ 0 ] );
			}
			return ( strings.areTyping || '%s are typing…' ).replace( '%s', names.join( ', ' ) );
		}

		function renderTyping( threadId ) {
			const text = typingText( threadId );
			safely( function () {
				adapter.showTyping( threadId, text );
			} );
		}

		function stopShowingTyping( threadId, typerId ) {
			const who = typers.get( threadId );
			if ( ! who || ! who.has( typerId ) ) {
				return;
			}
			env.clearTimeout( who.get( typerId ) );
			who.delete( typerId );
			if ( who.size === 0 ) {
				typers.delete( threadId );
			}
			renderTyping( threadId );
		}

		function onTyping( frame ) {
			const threadId = idString( frame.threadId );
			const typerId = idString( frame.userId );
			if ( threadId === null || typerId === null || typerId === userId ) {
				return;
			}
			if ( frame.typing === false ) {
				stopShowingTyping( threadId, typerId );
				return;
			}
			let who = typers.get( threadId );
			if ( ! who ) {
				who = new Map();
				typers.set( threadId, who );
			}
			if ( who.has( typerId ) ) {
				env.clearTimeout( who.get( typerId ) );
			}
			who.set( typerId, env.setTimeout( function () {
				stopShowingTyping( threadId, typerId );
			}, TYPING_SHOWN_MS ) );
			renderTyping( threadId );
		}

		function handleFrame( frame ) {
			if ( ! frame || typeof frame.type !== 'string' ) {
				return;
			}
			if ( frame.type === 'typing' ) {
				onTyping( frame );
				return;
			}
			if ( REFRESHING_TYPES.indexOf( frame.type ) === -1 ) {
				return;
			}
			const threadId = idString( frame.threadId );
			// A message ends its sender's typing at once, as chat apps do.
			if ( frame.type === 'message' && threadId !== null ) {
				stopShowingTyping( threadId, idString( frame.senderId ) );
			}
			requestRefresh( threadId, frame.type );
		}

		function stopTyping() {
			if ( idleTimer !== null ) {
				env.clearTimeout( idleTimer );
				idleTimer = null;
			}
			if ( typingThread !== null ) {
				transport.typing( typingThread, false );
				typingThread = null;
				typingSentAt = -Infinity;
			}
		}

		function onComposerInput() {
			const threadId = idString( safely( adapter.openThreadId ) );
			if ( threadId === null ) {
				return;
			}
			if ( typingThread !== null && typingThread !== threadId ) {
				stopTyping();
			}
			const now = env.now();
			if ( now - typingSentAt >= TYPING_SEND_EVERY_MS ) {
				transport.typing( threadId, true );
				typingSentAt = now;
				typingThread = threadId;
			}
			if ( idleTimer !== null ) {
				env.clearTimeout( idleTimer );
			}
			idleTimer = env.setTimeout( function () {
				idleTimer = null;
				stopTyping();
			}, TYPING_IDLE_MS );
		}

		return {
			start: function () {
				safely( function () {
					adapter.onThreadChange( followOpenThread );
				} );
				safely( function () {
					adapter.onComposerInput( onComposerInput );
				} );
				safely( function () {
					adapter.onReplySent( stopTyping );
				} );
				followOpenThread();
			},
			handleFrame: handleFrame,
			// The worker failed: the tab's own connection takes over, joining the open thread.
			setTransport: function ( next ) {
				transport = next;
				joined = null;
				followOpenThread();
			},
			// A new connection: bbrt forgot who was typing; our own typing state restarts.
			reset: function () {
				typers.forEach( function ( who, threadId ) {
					who.forEach( function ( timer ) {
						env.clearTimeout( timer );
					} );
					typers.delete( threadId );
					renderTyping( threadId );
				} );
				typingSentAt = -Infinity;
				typingThread = null;
			},
		};
	}

	/**
	 * The glue to BuddyBoss's messages UI (bp-nouveau's buddypress-messages.js and its
	 * ReadyLaunch twin, which share these names). Every call is guarded: BuddyBoss not
	 * ready yet, or a version without the expected object, means "do nothing".
	 */
	/**
	 * Merges a page of BuddyBoss's parsed messages into its collection: known ones updated
	 * in place, new ones appended oldest first (BuddyBoss appends a model flagged is_new,
	 * as its own send does, and prepends the others, as "load older" does).
	 */
	function mergeMessages( list, parsed, threadId ) {
		if ( ! Array.isArray( parsed ) ) {
			return 0;
		}
		const fresh = [];
		parsed.forEach( function ( attrs ) {
			if ( ! attrs || attrs.id === undefined || ( attrs.thread_id !== undefined && String( attrs.thread_id ) !== String( threadId ) ) ) {
				return;
			}
			const known = list.get( attrs.id );
			if ( known ) {
				known.set( attrs );
			} else {
				fresh.push( attrs );
			}
		} );
		fresh.sort( function ( x, y ) {
			return ( Number( new Date( x.date ) ) || 0 ) - ( Number( new Date( y.date ) ) || 0 ) || Number( x.id ) - Number( y.id );
		} );
		fresh.forEach( function ( attrs ) {
			attrs.is_new = true;
			list.add( attrs );
		} );
		return fresh.length;
	}

	function buddybossAdapter( win ) {
		const doc = win.document;
		function messages() {
			return win.bp && win.bp.Nouveau && win.bp.Nouveau.Messages;
		}
		function singleView() {
			const m = messages();
			if ( ! m || m.box !== 'single' || ! m.views || typeof m.views.get !== 'function' ) {
				return null;
			}
			const entry = m.views.get( 'single' );
			return entry && typeof entry.get === 'function' ? entry.get( 'view' ) : null;
		}
		function openThreadId() {
			const view = singleView();
			if ( ! view || ! view.options || ! view.options.thread ) {
				return null;
			}
			const thread = view.options.thread;
			return typeof thread.get === 'function' ? thread.get( 'id' ) : thread.id;
		}
		return {
			openThreadId: openThreadId,
			refreshThread: function () {
				const m = messages();
				const threadId = openThreadId();
				const list = m && m.messages;
				if ( threadId === null || ! list || typeof list.sync !== 'function' || typeof list.parse !== 'function' ) {
					return;
				}
				// BuddyBoss's own request for the thread's latest page (the collection's sync,
				// action messages_get_thread_messages), merged into its own collection: new
				// messages go through its add handler, changed ones (deleted, edited) through
				// each message view's change handler. Re-running the view's requestMessages
				// instead would throw on its second run and drop the member's draft.
				const cursor = list.before;
				list.before = null;
				list.sync( 'read', list, {
					data: { id: threadId },
					success: function ( response ) {
						let parsed;
						try {
							parsed = list.parse( response );
						} finally {
							// parse moves the "load older" cursor to the latest page.
							list.before = cursor;
						}
						const pane = doc.getElementById ? doc.getElementById( 'bp-message-thread-list' ) : null;
						// Follow new messages only if the member was reading the newest ones.
						const atBottom = pane && pane.scrollHeight - pane.scrollTop - pane.clientHeight < FOLLOW_WITHIN_PX;
						if ( mergeMessages( list, parsed, threadId ) > 0 && atBottom ) {
							pane.scrollTop = pane.scrollHeight;
						}
					},
				} );
				list.before = cursor;
			},
			refreshInbox: function () {
				// Without a payload the threads view refetches the list, no loader shown.
				if ( win.Backbone && typeof win.Backbone.trigger === 'function' ) {
					win.Backbone.trigger( 'relistelements' );
				}
			},
			participantName: function ( threadId, userId ) {
				const m = messages();
				const thread = m && m.threads && typeof m.threads.get === 'function' ? m.threads.get( threadId ) : null;
				const recipients = thread && typeof thread.get === 'function' ? thread.get( 'recipients' ) : null;
				if ( ! recipients ) {
					return null;
				}
				const list = Array.isArray( recipients ) ? recipients : Object.keys( recipients ).map( function ( k ) {
					return recipients[ k ];
				} );
				for ( const r of list ) {
					if ( r && String( r.id ) === String( userId ) && typeof r.user_name === 'string' ) {
						return r.user_name;
					}
				}
				return null;
			},
			showTyping: function ( threadId, text ) {
				const selector = '[data-thread-id="' + String( threadId ).replace( /[^0-9A-Za-z._~:@+-]/g, '' ) + '"] .typing-indicator';
				doc.querySelectorAll( selector ).forEach( function ( el ) {
					// Text, never HTML: names come from the site but pass through bbrt.
					el.textContent = text || '';
					el.classList.toggle( 'bp-hide', ! text );
					const excerpt = el.parentNode && el.parentNode.querySelector( '.thread-excerpt, .bb-rl-thread-excerpt' );
					if ( excerpt ) {
						excerpt.style.display = text ? 'none' : '';
					}
				} );
			},
			onThreadChange: function ( callback ) {
				const m = messages();
				if ( m && m.router && typeof m.router.on === 'function' ) {
					m.router.on( 'route', function () {
						// The router's handler builds the single view; read it after.
						win.setTimeout( callback, 0 );
					} );
				}
				win.addEventListener( 'popstate', function () {
					win.setTimeout( callback, 0 );
				} );
			},
			onComposerInput: function ( callback ) {
				doc.addEventListener( 'input', function ( event ) {
					const target = event.target;
					if ( target && typeof target.closest === 'function' && target.closest( '#send-reply, #message_content, .bp-message-content-wrap' ) ) {
						callback();
					}
				}, true );
			},
			onReplySent: function ( callback ) {
				if ( win.Backbone && typeof win.Backbone.on === 'function' ) {
					win.Backbone.on( 'relistelements', function ( payload ) {
						if ( payload && payload.message ) {
							callback();
						}
					} );
				}
			},
		};
	}

	function browserEnv( win ) {
		return {
			WebSocket: win.WebSocket,
			fetch: win.fetch.bind( win ),
			setTimeout: win.setTimeout.bind( win ),
			clearTimeout: win.clearTimeout.bind( win ),
			random: Math.random,
			now: function () {
				return Date.now();
			},
		};
	}

	/**
	 * Per-tab transport: a connection of this tab's own (no SharedWorker, or it failed).
	 */
	function startTabConnection( config, env, page ) {
		const connection = createConnection( config, env, {
			onFrame: function ( frame ) {
				const p = page();
				if ( p ) {
					p.handleFrame( frame );
				}
			},
			onOpen: function () {},
			onClose: function () {
				const p = page();
				if ( p ) {
					p.reset();
				}
			},
		} );
		connection.start();
		return connection;
	}

	/**
	 * A SharedWorker port seen as a transport: the worker holds the one connection of the
	 * browser and sends every tab the frames (bbrt-live-worker.js).
	 */
	function workerTransport( port ) {
		return {
			viaWorker: true,
			join: function ( threadId ) {
				port.postMessage( { op: 'join', threadId: idString( threadId ) } );
			},
			leave: function ( threadId ) {
				port.postMessage( { op: 'leave', threadId: idString( threadId ) } );
			},
			typing: function ( threadId, typing ) {
				port.postMessage( { op: 'typing', threadId: idString( threadId ), typing: typing } );
			},
		};
	}

	/**
	 * The SharedWorker's routing: one connection per member for every tab of the browser
	 * (a tab of another member, after a logout and login, gets a connection of its own).
	 * A thread stays joined while any tab wants it; every tab receives every frame and
	 * keeps what concerns its page; the connection ends with the member's last tab.
	 * `makeConnection( config, listener )` is createConnection bound to the worker's env.
	 */
	function createWorkerHub( makeConnection ) {
		// userId -> { connection, config, ports: Map( port -> Set( threadId ) ) }
		const members = new Map();
		const portMember = new Map();

		function wanted( member, threadId ) {
			for ( const threads of member.ports.values() ) {
				if ( threads.has( threadId ) ) {
					return true;
				}
			}
			return false;
		}

		function broadcast( member, message ) {
			member.ports.forEach( function ( threads, port ) {
				try {
					port.postMessage( message );
				} catch ( e ) {}
			} );
		}

		function hello( port, config ) {
			if ( ! config || ! config.userId ) {
				return;
			}
			bye( port );
			let member = members.get( config.userId );
			if ( ! member ) {
				member = { config: Object.assign( {}, config ), ports: new Map(), connection: null };
				members.set( config.userId, member );
				member.connection = makeConnection( member.config, {
					onFrame: function ( frame ) {
						broadcast( member, { op: 'frame', frame: frame } );
					},
					onOpen: function () {},
					onClose: function () {
						broadcast( member, { op: 'reset' } );
					},
				} );
				member.connection.start();
			} else {
				// The newest tab's nonce: an old tab's may have expired.
				Object.assign( member.config, config );
			}
			member.ports.set( port, new Set() );
			portMember.set( port, member );
		}

		function bye( port ) {
			const member = portMember.get( port );
			if ( ! member ) {
				return;
			}
			const threads = member.ports.get( port );
			member.ports.delete( port );
			portMember.delete( port );
			if ( member.ports.size === 0 ) {
				member.connection.stop();
				members.delete( member.config.userId );
				return;
			}
			threads.forEach( function ( threadId ) {
				if ( ! wanted( member, threadId ) ) {
					member.connection.leave( threadId );
				}
			} );
		}

		function receive( port, msg ) {
			if ( ! msg || typeof msg.op !== 'string' ) {
				return;
			}
			if ( msg.op === 'hello' ) {
				hello( port, msg.config );
				return;
			}
			if ( msg.op === 'bye' ) {
				bye( port );
				return;
			}
			const member = portMember.get( port );
			const threadId = idString( msg.threadId );
			if ( ! member || threadId === null ) {
				return;
			}
			if ( msg.op === 'join' ) {
				member.ports.get( port ).add( threadId );
				member.connection.join( threadId );
			} else if ( msg.op === 'leave' ) {
				member.ports.get( port ).delete( threadId );
				if ( ! wanted( member, threadId ) ) {
					member.connection.leave( threadId );
				}
			} else if ( msg.op === 'typing' ) {
				member.connection.typing( threadId, msg.typing !== false );
			}
		}

		return {
			receive: receive,
			connectionCount: function () {
				return members.size;
			},
		};
	}

	function boot( win ) {
		try {
			const data = win.bbrtLive;
			if ( ! data || ! data.bbrtUrl || ! data.ticketUrl || ! win.WebSocket || ! win.fetch ) {
				return;
			}
			const config = {
				bbrtUrl: data.bbrtUrl,
				ticketUrl: data.ticketUrl,
				nonce: data.nonce,
				userId: idString( data.userId ),
			};
			const env = browserEnv( win );
			const adapter = buddybossAdapter( win );
			let page = null;
			let transport = null;
			if ( data.workerUrl && typeof win.SharedWorker === 'function' ) {
				try {
					const worker = new win.SharedWorker( data.workerUrl, { name: 'bbrt-live' } );
					// A worker that cannot load (a blocked or broken script): this tab
					// connects by itself instead.
					worker.onerror = function () {
						if ( transport && transport.viaWorker ) {
							transport = startTabConnection( config, env, function () {
								return page;
							} );
							if ( page ) {
								page.setTransport( transport );
							}
						}
					};
					worker.port.onmessage = function ( event ) {
						const msg = event.data || {};
						if ( msg.op === 'frame' && page ) {
							page.handleFrame( msg.frame );
						} else if ( msg.op === 'reset' && page ) {
							page.reset();
						}
					};
					worker.port.start();
					worker.port.postMessage( { op: 'hello', config: config } );
					win.addEventListener( 'pagehide', function () {
						worker.port.postMessage( { op: 'bye' } );
					} );
					// Back from the back/forward cache: this tab said bye, so it says hello
					// again and rejoins its thread.
					win.addEventListener( 'pageshow', function ( event ) {
						if ( event.persisted && page && transport && transport.viaWorker ) {
							worker.port.postMessage( { op: 'hello', config: config } );
							page.setTransport( transport );
						}
					} );
					transport = workerTransport( worker.port );
				} catch ( e ) {
					transport = null;
				}
			}
			if ( transport === null ) {
				transport = startTabConnection( config, env, function () {
					return page;
				} );
			}
			page = createLivePage( {
				adapter: adapter,
				transport: transport,
				env: env,
				userId: config.userId,
				strings: data.strings,
			} );
			// BuddyBoss builds its views on document ready; start after it.
			const begin = function () {
				win.setTimeout( function () {
					try {
						page.start();
					} catch ( e ) {}
				}, 0 );
			};
			if ( win.document.readyState === 'loading' ) {
				win.document.addEventListener( 'DOMContentLoaded', begin );
			} else {
				begin();
			}
		} catch ( e ) {
			// The page keeps working without live updates.
		}
	}

	return {
		backoffDelay: backoffDelay,
		websocketUrl: websocketUrl,
		createConnection: createConnection,
		createLivePage: createLivePage,
		buddybossAdapter: buddybossAdapter,
		mergeMessages: mergeMessages,
		workerTransport: workerTransport,
		createWorkerHub: createWorkerHub,
		browserEnv: browserEnv,
		boot: boot,
		constants: {
			TYPING_SEND_EVERY_MS: TYPING_SEND_EVERY_MS,
			TYPING_IDLE_MS: TYPING_IDLE_MS,
			TYPING_SHOWN_MS: TYPING_SHOWN_MS,
			REFRESH_COALESCE_MS: REFRESH_COALESCE_MS,
			BACKOFF_BASE_MS: BACKOFF_BASE_MS,
			BACKOFF_CAP_MS: BACKOFF_CAP_MS,
		},
	};
} ) );
