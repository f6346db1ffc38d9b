/*
 * bbrt live website, SharedWorker: the one bbrt connection of the browser, shared by every
 * tab of the site (each tab a port). The routing is createWorkerHub in bbrt-live.js, which
 * the tests run without a worker; this file only wires it to the worker's ports.
 */
/* global importScripts, BbrtLive */
'use strict';
importScripts( new URL( 'bbrt-live.js', self.location.href ).toString() );

( function () {
	const env = BbrtLive.browserEnv( self );
	const hub = BbrtLive.createWorkerHub( function ( config, listener ) {
		return BbrtLive.createConnection( config, env, listener );
	} );
	self.onconnect = function ( event ) {
		const port = event.ports[ 0 ];
		port.onmessage = function ( message ) {
			hub.receive( port, message.data );
		};
		port.start();
	};
}() );
