'use strict';
// The SharedWorker's routing (createWorkerHub) and the BuddyBoss adapter against stand-ins
// of BuddyBoss's objects. Run: node --test tests/js/*.test.js
const test = require( 'node:test' );
const assert = require( 'node:assert/strict' );
const path = require( 'node:path' );
const Live = require( path.join( __dirname, '../../assets/js/bbrt-live.js' ) );

function recordingConnections() {
	const made = [];
	const factory = ( config, listener ) => {
		const conn = {
			config, listener, calls: [],
			start: () => conn.calls.push( [ 'start' ] ),
			stop: () => conn.calls.push( [ 'stop' ] ),
			join: ( t ) => conn.calls.push( [ 'join', t ] ),
			leave: ( t ) => conn.calls.push( [ 'leave', t ] ),
			typing: ( t, on ) => conn.calls.push( [ 'typing', t, on ] ),
		};
		made.push( conn );
		return conn;
	};
	return { made, factory };
}

function port() {
	const got = [];
	return { got, postMessage: ( m ) => got.push( m ) };
}

const config = ( userId, nonce = 'n' ) => ( { bbrtUrl: 'http://rt', ticketUrl: 'http://site/t', nonce, userId } );

test( 'three tabs of one member share one connection and all get every frame', () => {
	const conns = recordingConnections();
	const hub = Live.createWorkerHub( conns.factory );
	const tabs = [ port(), port(), port() ];
	tabs.forEach( ( p, i ) => hub.receive( p, { op: 'hello', config: config( '2', 'n' + i ) } ) );
	assert.equal( conns.made.length, 1 );
	assert.equal( hub.connectionCount(), 1 );
	assert.equal( conns.made[ 0 ].config.nonce, 'n2', 'the newest tab\'s nonce is used for the next ticket' );
	hub.receive( tabs[ 0 ], { op: 'join', threadId: 1 } );
	hub.receive( tabs[ 1 ], { op: 'join', threadId: '1' } );
	hub.receive( tabs[ 2 ], { op: 'join', threadId: '5' } );
	conns.made[ 0 ].listener.onFrame( { type: 'message', threadId: '1' } );
	for ( const t of tabs ) {
		assert.deepEqual( t.got, [ { op: 'frame', frame: { type: 'message', threadId: '1' } } ] );
	}
	conns.made[ 0 ].listener.onClose();
	for ( const t of tabs ) {
		assert.deepEqual( t.got[ 1 ], { op: 'reset' } );
	}
	hub.receive( tabs[ 2 ], { op: 'typing', threadId: '5', typing: true } );
	assert.deepEqual( conns.made[ 0 ].calls, [
		[ 'start' ], [ 'join', '1' ], [ 'join', '1' ], [ 'join', '5' ], [ 'typing', '5', true ],
	] );
} );

test( 'a thread is left only when no tab wants it; the last tab ends the connection', () => {
	const conns = recordingConnections();
	const hub = Live.createWorkerHub( conns.factory );
	const a = port();
	const b = port();
	hub.receive( a, { op: 'hello', config: config( '2' ) } );
	hub.receive( b, { op: 'hello', config: config( '2' ) } );
	hub.receive( a, { op: 'join', threadId: '1' } );
	hub.receive( b, { op: 'join', threadId: '1' } );
	hub.receive( a, { op: 'join', threadId: '3' } );
	const calls = conns.made[ 0 ].calls;
	calls.length = 0;
	hub.receive( a, { op: 'leave', threadId: '1' } );
	assert.deepEqual( calls, [], 'b still has thread 1' );
	hub.receive( a, { op: 'bye' } );
	assert.deepEqual( calls, [ [ 'leave', '3' ] ] );
	conns.made[ 0 ].listener.onFrame( { type: 'read', threadId: '1' } );
	assert.equal( a.got.length, 0, 'a closed tab gets nothing' );
	assert.equal( b.got.length, 1 );
	hub.receive( b, { op: 'bye' } );
	assert.deepEqual( calls.pop(), [ 'stop' ] );
	assert.equal( hub.connectionCount(), 0 );
	// A new tab later opens a new connection.
	hub.receive( port(), { op: 'hello', config: config( '2' ) } );
	assert.equal( conns.made.length, 2 );
} );

test( 'tabs of different members never share a connection or frames', () => {
	const conns = recordingConnections();
	const hub = Live.createWorkerHub( conns.factory );
	const alice = port();
	const bob = port();
	hub.receive( alice, { op: 'hello', config: config( '2' ) } );
	hub.receive( bob, { op: 'hello', config: config( '3' ) } );
	assert.equal( conns.made.length, 2 );
	conns.made[ 0 ].listener.onFrame( { type: 'message', threadId: '1' } );
	assert.equal( alice.got.length, 1 );
	assert.equal( bob.got.length, 0 );
} );

test( 'messages before hello, without a thread, or unknown are ignored', () => {
	const conns = recordingConnections();
	const hub = Live.createWorkerHub( conns.factory );
	const a = port();
	assert.doesNotThrow( () => {
		hub.receive( a, { op: 'join', threadId: '1' } );
		hub.receive( a, null );
		hub.receive( a, { op: 'hello' } );
		hub.receive( a, { op: 'hello', config: config( '2' ) } );
		hub.receive( a, { op: 'join' } );
		hub.receive( a, { op: 'dance', threadId: '1' } );
	} );
	assert.deepEqual( conns.made[ 0 ].calls, [ [ 'start' ] ] );
} );

test( 'the page sends joins and typing to the worker port', () => {
	const p = port();
	const t = Live.workerTransport( p );
	t.join( 4 );
	t.typing( '4', false );
	t.leave( '4' );
	assert.deepEqual( p.got, [
		{ op: 'join', threadId: '4' },
		{ op: 'typing', threadId: '4', typing: false },
		{ op: 'leave', threadId: '4' },
	] );
} );

/** Stand-ins for the BuddyBoss objects the adapter calls (buddypress-messages.js). */
function fakeBuddyBoss() {
	const calls = [];
	const thread = { get: ( k ) => ( { id: 1, recipients: { 2: { id: 2, user_name: 'Alice', is_you: true }, 3: { id: 3, user_name: 'Bob' } } } )[ k ] };
	const view = { options: { thread } };
	// bp.Collections.Messages: its sync sends messages_get_thread_messages; parse moves
	// `before`; add appends a model flagged is_new and prepends the others.
	const shown = [];
	const models = new Map();
	const list = {
		before: 'older-cursor',
		answer: null,
		sync( method, self, options ) {
			calls.push( [ 'sync', method, JSON.stringify( options.data ), 'before=' + this.before ] );
			options.success( this.answer );
		},
		parse( resp ) {
			this.before = resp.next_messages_timestamp;
			return resp.messages.map( ( m ) => Object.assign( {}, m, { date: new Date( m.date ) } ) );
		},
		get: ( id ) => models.get( String( id ) ),
		add( attrs ) {
			const model = { attrs, set: ( a ) => {
				Object.assign( model.attrs, a );
				calls.push( [ 'change', a.id, a.content ] );
			} };
			models.set( String( attrs.id ), model );
			if ( attrs.is_new ) {
				shown.push( attrs.id );
			} else {
				shown.unshift( attrs.id );
			}
		},
	};
	const win = {
		document: {},
		Backbone: { trigger: ( name, payload ) => calls.push( [ 'Backbone.trigger', name, payload ] ) },
		bp: { Nouveau: { Messages: {
			box: 'single',
			messages: list,
			views: { get: ( id ) => ( id === 'single' ? { get: ( k ) => ( k === 'view' ? view : undefined ) } : undefined ) },
			threads: { get: ( id ) => ( String( id ) === '1' ? thread : undefined ) },
		} } },
	};
	return { win, calls, list, shown };
}

test( 'the BuddyBoss adapter refreshes through BuddyBoss\'s own request, collection and views', () => {
	const bb = fakeBuddyBoss();
	const adapter = Live.buddybossAdapter( bb.win );
	assert.equal( adapter.openThreadId(), 1 );
	// What the thread showed: messages 1 and 2 (loaded newest first, each prepended).
	bb.list.add( { id: 2, content: 'two', date: '2026-12-01T10:00:02Z' } );
	bb.list.add( { id: 1, content: 'one', date: '2026-12-01T10:00:01Z' } );
	assert.deepEqual( bb.shown, [ 1, 2 ] );
	// The latest page, newest first: 4 and 3 are new, 2 was deleted (blanked).
	bb.list.answer = { next_messages_timestamp: 'latest-cursor', messages: [
		{ id: 4, content: 'four', date: '2026-12-01T10:00:04Z' },
		{ id: 3, content: 'three', date: '2026-12-01T10:00:03Z' },
		{ id: 2, content: '', date: '2026-12-01T10:00:02Z' },
	] };
	const refresh = adapter.refreshThread; // the core calls it unbound
	refresh();
	assert.deepEqual( bb.calls, [
		[ 'sync', 'read', '{"id":1}', 'before=null' ],
		[ 'change', 2, '' ],
	] );
	assert.deepEqual( bb.shown, [ 1, 2, 3, 4 ], 'new messages appended, oldest first' );
	assert.equal( bb.list.before, 'older-cursor', '"load older" still continues from where it was' );
	bb.calls.length = 0;
	refresh();
	assert.deepEqual( bb.shown, [ 1, 2, 3, 4 ], 'a second refresh adds nothing twice' );

	bb.calls.length = 0;
	adapter.refreshInbox();
	assert.deepEqual( bb.calls, [ [ 'Backbone.trigger', 'relistelements', undefined ] ] );

	assert.equal( adapter.participantName( '1', '3' ), 'Bob' );
	assert.equal( adapter.participantName( '1', '9' ), null );
	assert.equal( adapter.participantName( '8', '3' ), null );
	bb.win.bp.Nouveau.Messages.box = 'inbox';
	assert.equal( adapter.openThreadId(), null );
	bb.calls.length = 0;
	refresh();
	assert.deepEqual( bb.calls, [], 'no thread open: nothing to refresh' );
} );

test( 'the BuddyBoss adapter writes typing as text, never HTML', () => {
	const classes = new Set( [ 'typing-indicator', 'bp-hide' ] );
	const excerpt = { style: { display: '' } };
	const el = {
		textContent: '',
		set innerHTML( v ) {
			throw new Error( 'innerHTML must not be used' );
		},
		classList: { toggle: ( c, on ) => ( on ? classes.add( c ) : classes.delete( c ) ) },
		parentNode: { querySelector: () => excerpt },
	};
	let selector = null;
	const win = { document: { querySelectorAll: ( s ) => {
		selector = s;
		return [ el ];
	} } };
	const adapter = Live.buddybossAdapter( win );
	adapter.showTyping( '1"] *, x[y="', '<img src=x onerror=alert(1)> is typing…' );
	assert.equal( selector, '[data-thread-id="1xy"] .typing-indicator', 'the id cannot break out of the selector' );
	assert.equal( el.textContent, '<img src=x onerror=alert(1)> is typing…' );
	assert.equal( classes.has( 'bp-hide' ), false );
	assert.equal( excerpt.style.display, 'none' );
	adapter.showTyping( '1', null );
	assert.equal( el.textContent, '' );
	assert.equal( classes.has( 'bp-hide' ), true );
	assert.equal( excerpt.style.display, '' );
} );

test( 'the adapter does nothing when BuddyBoss is absent', () => {
	const adapter = Live.buddybossAdapter( { document: {} } );
	assert.equal( adapter.openThreadId(), null );
	assert.doesNotThrow( () => {
		adapter.refreshThread();
		adapter.refreshInbox();
		adapter.participantName( '1', '2' );
	} );
} );

/** A window for boot(): records ticket fetches, sockets and what the worker port receives. */
function fakeWindow( { sharedWorker } ) {
	const log = { fetches: 0, sockets: 0, posted: [], listeners: {} };
	const win = {
		bbrtLive: { bbrtUrl: 'http://rt', ticketUrl: 'http://site/t', nonce: 'n', userId: '2', workerUrl: 'http://site/w.js' },
		fetch: async () => {
			log.fetches += 1;
			return { ok: true, status: 200, json: async () => ( { ticket: 't' } ) };
		},
		WebSocket: function () {
			log.sockets += 1;
			this.readyState = 0;
			this.send = () => {};
			this.close = () => {};
		},
		setTimeout: ( fn ) => setImmediate( fn ),
		clearTimeout: () => {},
		addEventListener: ( name, fn ) => {
			log.listeners[ name ] = fn;
		},
		document: { readyState: 'complete', addEventListener: () => {} },
	};
	if ( sharedWorker === 'works' ) {
		win.SharedWorker = function ( url ) {
			log.workerUrl = url;
			this.port = { start: () => {}, postMessage: ( m ) => log.posted.push( m ) };
		};
	} else if ( sharedWorker === 'throws' ) {
		win.SharedWorker = function () {
			throw new Error( 'SecurityError' );
		};
	}
	return { win, log };
}

const settle = () => new Promise( ( r ) => setTimeout( r, 20 ) );

test( 'with a SharedWorker the tab says hello to it and opens no connection of its own', async () => {
	const { win, log } = fakeWindow( { sharedWorker: 'works' } );
	Live.boot( win );
	await settle();
	assert.equal( log.workerUrl, 'http://site/w.js' );
	assert.deepEqual( log.posted[ 0 ], { op: 'hello', config: { bbrtUrl: 'http://rt', ticketUrl: 'http://site/t', nonce: 'n', userId: '2' } } );
	assert.equal( log.fetches, 0 );
	assert.equal( log.sockets, 0 );
	log.listeners.pagehide();
	assert.deepEqual( log.posted[ log.posted.length - 1 ], { op: 'bye' } );
} );

test( 'without a SharedWorker, or when it cannot start, the tab connects by itself', async () => {
	for ( const sharedWorker of [ 'absent', 'throws' ] ) {
		const { win, log } = fakeWindow( { sharedWorker } );
		assert.doesNotThrow( () => Live.boot( win ) );
		await settle();
		assert.equal( log.fetches, 1, sharedWorker + ': a ticket of its own' );
		assert.equal( log.sockets, 1, sharedWorker + ': a connection of its own' );
	}
} );
