// A peer for the benchmark: the seed's server (bench/node/server.js, the seed's
// documented behaviour) written on Socket.IO 4, as an operator would write it
// today. Same events, each a Socket.IO event whose payload is the seed frame
// without its `type`:
//
// - `user_connected {userId}`: remembered and broadcast to EVERY connected
//   socket (the seed's "sends a user_connected message to all connected
//   clients"), as the Node baseline does.
// - `join_thread {threadId}`: the socket joins the room `thread:<id>`, answered
//   with `joined {threadId}` (the baseline's deviation, so setup can be timed).
// - `send_message {threadId, message, clientMessageId?}`: `message` with a
//   server-assigned id (`id`, `threadId`, `senderId`, `message`, `sentAt`) to
//   the room, the sender included; `ack {clientMessageId}` after it when asked.
// - `typing {threadId, typing?}`: to the room's other sockets.
// - anything else: `error {message}`.
//
// No site call and no storage: like the Node baseline outside scenario 6.
// WebSocket transport only (the load generator speaks engine.io v4 over
// WebSocket and never long-polls), no per-message deflate.
//
// Usage: node server.js [--port 8080] [--host 127.0.0.1]
'use strict';

const http = require('http');
const { Server } = require('socket.io');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg('--port', process.env.PORT || 8080));
const host = arg('--host', '127.0.0.1');

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
});
let nextMessageId = 1;

const room = (threadId) => `thread:${threadId}`;

io.on('connection', (socket) => {
  socket.data.userId = null;
  socket.on('user_connected', (data) => {
    socket.data.userId = String(data && data.userId);
    io.emit('user_connected', { userId: socket.data.userId });
  });
  socket.on('join_thread', (data) => {
    const threadId = String(data && data.threadId);
    socket.join(room(threadId));
    socket.emit('joined', { threadId });
  });
  socket.on('send_message', (data) => {
    if (!data || data.threadId === undefined) {
      socket.emit('error', { message: 'Failed to send message: no threadId' });
      return;
    }
    const threadId = String(data.threadId);
    io.to(room(threadId)).emit('message', {
      id: String(nextMessageId++),
      threadId,
      senderId: socket.data.userId,
      message: data.message,
      sentAt: new Date().toISOString(),
    });
    if (data.clientMessageId !== undefined) {
      socket.emit('ack', { clientMessageId: data.clientMessageId });
    }
  });
  socket.on('typing', (data) => {
    const threadId = String(data && data.threadId);
    socket.to(room(threadId)).emit('typing', {
      threadId,
      userId: socket.data.userId,
      typing: !(data && data.typing === false),
    });
  });
  socket.onAny((event) => {
    if (!['user_connected', 'join_thread', 'send_message', 'typing'].includes(event)) {
      socket.emit('error', { message: 'Unknown message type' });
    }
  });
});

httpServer.listen(port, host, () => {
  console.log(`socket.io peer listening on ws://${host}:${port}/socket.io/`);
});

function stop() {
  io.close();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
