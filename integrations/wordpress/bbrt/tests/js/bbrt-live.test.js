'use strict';
// The live website script's core, with a stand-in for BuddyBoss (records every refresh),
// a fake WebSocket and a manual clock. Run: node --test tests/js/*.test.js
const test = require( 'node:test' );
const assert = require( 'node:assert/strict' );
const path = require( 'node:path' );
const Live = require( path.join( __dirname, '../../assets/js/bbrt-live.js' ) );
const C = Live.constants;

/** Timers that run only when the test advances the clock. */
function manualClock() {
	let now = 1000;
	let seq = 0;
	const timers = new Map();
	return {
		now: () => now,
		setTimeout( fn, ms ) {
			seq += 1;
			timers.set( seq, { at: now + ms, fn } );
			return seq;
		},
		clearTimeout( id ) {
			timers.delete( id );
		},
		async advance( ms ) {
			const until = now + ms;
			for ( ;; ) {
				let next = null;
				for ( const [ id, t ] of timers ) {
					if ( t.at <= until && ( next === null || t.at < timers.get( next ).at ) ) {
						next = id;
					}
				}
				if ( next === null ) {
					break;
				}
				const t = timers.get( next );
				timers.delete( next );
				now = t.at;
				t.fn();
				await flush();
			}
			now = until;
			await flush();
		},
		pending: () => timers.size,
	};
}

async function flush() {
	for ( let i = 0; i < 5; i++ ) {
		await new Promise( ( r ) => setImmediate( r ) );
	}
}

/** A WebSocket stand-in: records sent frames, the test opens, feeds and closes it. */
function fakeSockets() {
	const made = [];
	class FakeWebSocket {
		constructor( url ) {
			this.url = url;
			this.readyState = 0;
			this.sent = [];
			made.push( this );
		}
		send( data ) {
			this.sent.push( JSON.parse( data ) );
		}
		close( code ) {
			this.readyState = 3;
			this.closedWith = code;
		}
		serverOpen() {
			this.readyState = 1;
			this.onopen();
		}
		serverSend( frame ) {
			this.onmessage( { data: typeof frame === 'string' ? frame : JSON.stringify( frame ) } );
		}
		serverClose() {
			this.readyState = 3;
			this.onclose( { code: 1006 } );
		}
	}
	return { FakeWebSocket, made };
}

function ticketFetch( answers ) {
	const calls = [];
	let n = 0;
	const fetch = async ( url, init ) => {
		calls.push( { url, init } );
		const answer = answers[ Math.min( n, answers.length - 1 ) ];
		n += 1;
		if ( answer === 'network' ) {
			throw new TypeError( 'Failed to fetch' );
		}
		return { ok: answer.status === 200, status: answer.status, json: async () => answer.body };
	};
	return { fetch, calls };
}

function env( clock, sockets, fetch, random = () => 0.5 ) {
	return {
		WebSocket: sockets.FakeWebSocket,
		fetch,
		setTimeout: clock.setTimeout,
		clearTimeout: clock.clearTimeout,
		random,
		now: clock.now,
	};
}

const CONFIG = {
	bbrtUrl: 'http://127.0.0.1:18590',
	ticketUrl: 'http://site.test/wp-json/bbrt/v1/ticket',
	nonce: 'n0nce',
	userId: '2',
};

/** The stand-in for BuddyBoss: an open thread, recipients, and every call recorded. */
function standIn( openThread = '1' ) {
	const calls = [];
	const hooks = {};
	const adapter = {
		open: openThread,
		openThreadId: () => adapter.open,
		refreshThread: () => calls.push( [ 'refreshThread', adapter.open ] ),
		refreshInbox: () => calls.push( [ 'refreshInbox' ] ),
		participantName: ( threadId, userId ) => ( { 3: 'Bob <b>', 4: 'Carol' } )[ userId ] || null,
		showTyping: ( threadId, text ) => calls.push( [ 'showTyping', threadId, text ] ),
		onThreadChange: ( cb ) => {
			hooks.threadChange = cb;
		},
		onComposerInput: ( cb ) => {
			hooks.input = cb;
		},
		onReplySent: ( cb ) => {
			hooks.replySent = cb;
		},
	};
	return { adapter, calls, hooks };
}

function recordingTransport() {
	const sent = [];
	return {
		sent,
		join: ( t ) => sent.push( [ 'join', t ] ),
		leave: ( t ) => sent.push( [ 'leave', t ] ),
		typing: ( t, on ) => sent.push( [ 'typing', t, on ] ),
	};
}

function page( clock, bb, transport ) {
	const p = Live.createLivePage( {
		adapter: bb.adapter,
		transport,
		env: { setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, now: clock.now },
		userId: 2,
		strings: { isTyping: '%s is typing…', areTyping: '%s are typing…', someone: 'Someone' },
	} );
	p.start();
	return p;
}

test( 'websocketUrl maps http(s) to ws(s) and carries the ticket', () => {
	assert.equal( Live.websocketUrl( 'http://127.0.0.1:18590', 'a.b.c' ), 'ws://127.0.0.1:18590/?ticket=a.b.c' );
	assert.equal( Live.websocketUrl( 'https://rt.example.org/base/', 'x' ), 'wss://rt.example.org/base/?ticket=x' );
	assert.equal( Live.websocketUrl( 'wss://rt.example.org', 'x' ), 'wss://rt.example.org/?ticket=x' );
} );

test( 'backoff grows exponentially, is capped, and is jittered', () => {
	assert.equal( Live.backoffDelay( 0, () => 0 ), C.BACKOFF_BASE_MS / 2 );
	assert.equal( Live.backoffDelay( 0, () => 0.999999 ), C.BACKOFF_BASE_MS - 1 );
	assert.equal( Live.backoffDelay( 3, () => 0 ), 4 * C.BACKOFF_BASE_MS );
	assert.equal( Live.backoffDelay( 30, () => 0 ), C.BACKOFF_CAP_MS / 2 );
	assert.ok( Live.backoffDelay( 30, () => 0.999999 ) < C.BACKOFF_CAP_MS );
	assert.notEqual( Live.backoffDelay( 2, () => 0.1 ), Live.backoffDelay( 2, () => 0.9 ) );
} );

test( 'connects with a fresh ticket, identifies, and joins its threads', async () => {
	const clock = manualClock();
	const sockets = fakeSockets();
	const tickets = ticketFetch( [ { status: 200, body: { ticket: 't1', expires_at: 0 } } ] );
	const frames = [];
	const conn = Live.createConnection( CONFIG, env( clock, sockets, tickets.fetch ), {
		onFrame: ( f ) => frames.push( f ),
		onOpen() {},
		onClose() {},
	} );
	conn.join( 1 );
	conn.start();
	await flush();
	assert.equal( tickets.calls.length, 1 );
	assert.equal( tickets.calls[ 0 ].init.method, 'POST' );
	assert.equal( tickets.calls[ 0 ].init.headers[ 'X-WP-Nonce' ], 'n0nce' );
	assert.equal( sockets.made.length, 1 );
	assert.equal( sockets.made[ 0 ].url, 'ws://127.0.0.1:18590/?ticket=t1' );
	sockets.made[ 0 ].serverOpen();
	const sent = sockets.made[ 0 ].sent;
	assert.equal( sent[ 0 ].type, 'user_connected' );
	assert.equal( sent[ 0 ].userId, '2' );
	assert.deepEqual( sent.slice( 1 ).map( ( f ) => [ f.type, f.threadId ] ), [ [ 'join_thread', '1' ] ] );
	conn.join( '5' );
	conn.join( '5' );
	assert.deepEqual( sent.slice( 2 ).map( ( f ) => [ f.type, f.threadId ] ), [ [ 'join_thread', '5' ] ] );
	conn.typing( '5', true );
	assert.deepEqual( sent[ sent.length - 1 ], { type: 'typing', threadId: '5', typing: true } );
	sockets.made[ 0 ].serverSend( 'not json' );
	sockets.made[ 0 ].serverSend( { type: 'message', threadId: '1' } );
	assert.deepEqual( frames, [ { type: 'message', threadId: '1' } ] );
} );

test( 'reconnects with backoff and a new ticket each time, rejoining', async () => {
	const clock = manualClock();
	const sockets = fakeSockets();
	const tickets = ticketFetch( [
		{ status: 200, body: { ticket: 't1' } },
		'network',
		{ status: 503, body: { code: 'bbrt_tickets_not_configured' } },
		{ status: 200, body: { ticket: 't2' } },
	] );
	let closes = 0;
	const conn = Live.createConnection( CONFIG, env( clock, sockets, tickets.fetch, () => 0 ), {
		onFrame() {},
		onOpen() {},
		onClose: () => {
			closes += 1;
		},
	} );
	conn.join( '1' );
	conn.start();
	await flush();
	sockets.made[ 0 ].serverOpen();
	sockets.made[ 0 ].serverClose();
	assert.equal( closes, 1 );
	// attempt 0: half of the base; nothing happens before.
	await clock.advance( C.BACKOFF_BASE_MS / 2 - 1 );
	assert.equal( tickets.calls.length, 1 );
	await clock.advance( 1 );
	assert.equal( tickets.calls.length, 2, 'network failure on the ticket' );
	await clock.advance( C.BACKOFF_BASE_MS - 1 );
	assert.equal( tickets.calls.length, 2 );
	await clock.advance( 1 );
	assert.equal( tickets.calls.length, 3, '503 on the ticket' );
	await clock.advance( 2 * C.BACKOFF_BASE_MS );
	assert.equal( tickets.calls.length, 4 );
	assert.equal( sockets.made.length, 2 );
	assert.equal( sockets.made[ 1 ].url, 'ws://127.0.0.1:18590/?ticket=t2' );
	sockets.made[ 1 ].serverOpen();
	assert.deepEqual( sockets.made[ 1 ].sent.map( ( f ) => f.type ), [ 'user_connected', 'join_thread' ] );
	// Frames sent while closed are dropped, not thrown.
	sockets.made[ 1 ].serverClose();
	assert.doesNotThrow( () => conn.typing( '1', true ) );
	conn.stop();
	await clock.advance( C.BACKOFF_CAP_MS * 2 );
	assert.equal( tickets.calls.length, 4, 'stopped: no more attempts' );
} );

test( 'a connection that stayed open starts the backoff over', async () => {
	const clock = manualClock();
	const sockets = fakeSockets();
	const tickets = ticketFetch( [ { status: 200, body: { ticket: 't' } } ] );
	const conn = Live.createConnection( CONFIG, env( clock, sockets, tickets.fetch, () => 0 ), {
		onFrame() {}, onOpen() {}, onClose() {},
	} );
	conn.start();
	await flush();
	for ( let i = 0; i < 3; i++ ) {
		sockets.made[ i ].serverOpen();
		sockets.made[ i ].serverClose();
		await clock.advance( C.BACKOFF_BASE_MS * Math.pow( 2, i ) / 2 );
	}
	assert.equal( sockets.made.length, 4 );
	sockets.made[ 3 ].serverOpen();
	await clock.advance( 60000 );
	sockets.made[ 3 ].serverClose();
	await clock.advance( C.BACKOFF_BASE_MS / 2 );
	assert.equal( sockets.made.length, 5 );
} );

test( 'a WebSocket constructor that throws is retried, not thrown into the page', async () => {
	const clock = manualClock();
	const tickets = ticketFetch( [ { status: 200, body: { ticket: 't' } } ] );
	let tries = 0;
	const e = {
		WebSocket: function () {
			tries += 1;
			throw new Error( 'SecurityError' );
		},
		fetch: tickets.fetch, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0, now: clock.now,
	};
	const conn = Live.createConnection( CONFIG, e, { onFrame() {}, onOpen() {}, onClose() {} } );
	conn.start();
	await flush();
	await clock.advance( C.BACKOFF_BASE_MS );
	assert.equal( tries, 2 );
} );

test( 'a read of the open thread refreshes only the inbox (its counts)', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'read', threadId: '1', userId: '3' } );
	await clock.advance( C.REFRESH_COALESCE_MS );
	assert.deepEqual( bb.calls, [ [ 'refreshInbox' ] ] );
} );

test( 'each changing event of the open thread refreshes the thread and the inbox', async () => {
	for ( const type of [ 'message', 'deleted', 'thread_deleted', 'thread_left' ] ) {
		const clock = manualClock();
		const bb = standIn( '1' );
		const p = page( clock, bb, recordingTransport() );
		p.handleFrame( { type, threadId: '1', senderId: '3', userId: '3' } );
		assert.deepEqual( bb.calls, [], type + ': coalesced, not yet' );
		await clock.advance( C.REFRESH_COALESCE_MS );
		assert.deepEqual( bb.calls, [ [ 'refreshThread', '1' ], [ 'refreshInbox' ] ], type );
	}
} );

test( 'an event of another thread refreshes only the inbox', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'message', threadId: 7, senderId: '3' } );
	await clock.advance( C.REFRESH_COALESCE_MS );
	assert.deepEqual( bb.calls, [ [ 'refreshInbox' ] ] );
	// On the inbox page (no thread open) too.
	bb.adapter.open = null;
	p.handleFrame( { type: 'read', threadId: '1', userId: '3' } );
	await clock.advance( C.REFRESH_COALESCE_MS );
	assert.deepEqual( bb.calls, [ [ 'refreshInbox' ], [ 'refreshInbox' ] ] );
} );

test( 'the first event refreshes at once; a burst right after waits for the window', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'message', threadId: '1', senderId: '3' } );
	await clock.advance( 0 );
	assert.equal( bb.calls.length, 2 );
	await clock.advance( 10 );
	p.handleFrame( { type: 'message', threadId: '1', senderId: '3' } );
	p.handleFrame( { type: 'deleted', threadId: '1', userId: '3', ids: [ '9' ] } );
	await clock.advance( C.REFRESH_COALESCE_MS - 11 );
	assert.equal( bb.calls.length, 2, 'not before the window ends' );
	await clock.advance( 1 );
	assert.deepEqual( bb.calls.slice( 2 ), [ [ 'refreshThread', '1' ], [ 'refreshInbox' ] ], 'one refresh for the burst' );
	await clock.advance( C.REFRESH_COALESCE_MS * 4 );
	assert.equal( bb.calls.length, 4 );
} );

test( 'events close together cost one refresh; unknown frames none', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'message', threadId: '1', senderId: '3' } );
	p.handleFrame( { type: 'read', threadId: '1', userId: '3' } );
	p.handleFrame( { type: 'joined', threadId: '1' } );
	p.handleFrame( { type: 'ack' } );
	p.handleFrame( null );
	await clock.advance( C.REFRESH_COALESCE_MS );
	assert.deepEqual( bb.calls, [ [ 'refreshThread', '1' ], [ 'refreshInbox' ] ] );
} );

test( 'a BuddyBoss refresh that throws does not escape', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	bb.adapter.refreshThread = () => {
		throw new Error( 'BuddyBoss not ready' );
	};
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'message', threadId: '1', senderId: '3' } );
	await clock.advance( C.REFRESH_COALESCE_MS );
	assert.deepEqual( bb.calls, [ [ 'refreshInbox' ] ] );
} );

test( 'joins the open thread and follows BuddyBoss to another one', () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const transport = recordingTransport();
	page( clock, bb, transport );
	assert.deepEqual( transport.sent, [ [ 'join', '1' ] ] );
	bb.adapter.open = 9;
	bb.hooks.threadChange();
	bb.hooks.threadChange();
	assert.deepEqual( transport.sent, [ [ 'join', '1' ], [ 'join', '9' ] ] );
} );

test( 'typing of others shows names as given, text only, and expires', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '2', typing: true } );
	assert.deepEqual( bb.calls, [], 'our own typing is not shown' );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '3', typing: true } );
	assert.deepEqual( bb.calls.pop(), [ 'showTyping', '1', 'Bob <b> is typing…' ] );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '4', typing: true } );
	assert.deepEqual( bb.calls.pop(), [ 'showTyping', '1', 'Bob <b>, Carol are typing…' ] );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '4', typing: false } );
	assert.deepEqual( bb.calls.pop(), [ 'showTyping', '1', 'Bob <b> is typing…' ] );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '99', typing: true } );
	assert.deepEqual( bb.calls.pop(), [ 'showTyping', '1', 'Bob <b>, Someone are typing…' ] );
	await clock.advance( C.TYPING_SHOWN_MS );
	assert.deepEqual( bb.calls.slice( -1 ), [ [ 'showTyping', '1', null ] ] );
} );

test( 'a message from a typer hides their typing at once', () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '3', typing: true } );
	p.handleFrame( { type: 'message', threadId: '1', senderId: '3' } );
	assert.deepEqual( bb.calls.pop(), [ 'showTyping', '1', null ] );
} );

test( 'sends typing while the member types, throttled, and stops when idle or sent', async () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const transport = recordingTransport();
	page( clock, bb, transport );
	transport.sent.length = 0;
	bb.hooks.input();
	assert.deepEqual( transport.sent, [ [ 'typing', '1', true ] ] );
	for ( let i = 0; i < 10; i++ ) {
		await clock.advance( 100 );
		bb.hooks.input();
	}
	assert.equal( transport.sent.length, 1, 'no second typing within ' + C.TYPING_SEND_EVERY_MS + ' ms' );
	await clock.advance( C.TYPING_SEND_EVERY_MS - 1000 );
	bb.hooks.input();
	assert.deepEqual( transport.sent.pop(), [ 'typing', '1', true ] );
	await clock.advance( C.TYPING_IDLE_MS );
	assert.deepEqual( transport.sent.pop(), [ 'typing', '1', false ] );
	bb.hooks.input();
	bb.hooks.replySent();
	assert.deepEqual( transport.sent.slice( -2 ), [ [ 'typing', '1', true ], [ 'typing', '1', false ] ] );
	await clock.advance( C.TYPING_IDLE_MS );
	assert.equal( transport.sent.slice( -1 )[ 0 ][ 2 ], false );
	assert.equal( transport.sent.length, 3, 'no second stop after the send' );
	// Nothing open: nothing sent.
	bb.adapter.open = null;
	bb.hooks.input();
	assert.equal( transport.sent.length, 3 );
} );

test( 'after a reconnect, typing shown from the old connection is cleared', () => {
	const clock = manualClock();
	const bb = standIn( '1' );
	const p = page( clock, bb, recordingTransport() );
	p.handleFrame( { type: 'typing', threadId: '1', userId: '3', typing: true } );
	p.reset();
	assert.deepEqual( bb.calls.pop(), [ 'showTyping', '1', null ] );
} );

test( 'loading the script outside a page does not throw, and boot without data does nothing', () => {
	assert.doesNotThrow( () => Live.boot( {} ) );
	assert.doesNotThrow( () => Live.boot( { bbrtLive: { bbrtUrl: 'http://x' } } ) );
} );
