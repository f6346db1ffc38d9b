// The baseline: the seed's Node.js server as its documentation describes it
// (shared/seed/000_12809bf21bb79930.txt), on the `ws` package.
//
// - `user_connected {userId}`: remembered in a user map and broadcast to EVERY
//   connected client (the seed's "sends a user_connected message to all
//   connected clients"; O(N^2) over a connection storm).
// - `join_thread {threadId}`: the connection joins the thread map.
// - `send_message`: a fake stored message (no site call unless SITE_URL is set,
//   see below) broadcast as `message` to the thread's connections, the sender's
//   included.
// - `typing {threadId}`: broadcast to the thread's other connections.
// - anything else: `{type: "error", message}` as the seed documents.
//
// Two deviations so the load generator can tell when setup is done, both one
// small frame per request: `join_thread` is answered with `{type: "joined",
// threadId}`, and a frame with a `clientMessageId` gets `{type: "ack", ...}`
// after its message is broadcast.
//
// With SITE_URL (a fake BuddyBoss site root ending in /wp-json/), send_message
// POSTs to buddyboss/v1/messages with the sender's `Authorization: Bearer
// <token>` first, as the seed's server did, and broadcasts after the answer.
//
// Usage: node server.js [--port 8080] [--host 127.0.0.1]
'use strict';

const { WebSocketServer } = require('ws');

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const port = Number(arg('--port', process.env.PORT || 8080));
const host = arg('--host', '127.0.0.1');
const siteUrl = process.env.SITE_URL || null;

const wss = new WebSocketServer({ host, port, perMessageDeflate: false });
const users = new Map(); // userId -> Set<ws>
const threads = new Map(); // threadId -> Set<ws>
let nextMessageId = 1;

function send(ws, frame) {
  if (ws.readyState === 1) ws.send(frame);
}

function broadcastThread(threadId, frame, except) {
  const members = threads.get(threadId);
  if (!members) return;
  for (const ws of members) {
    if (ws !== except) send(ws, frame);
  }
}

async function storeOnSite(token, threadId, text) {
  const res = await fetch(`${siteUrl}buddyboss/v1/messages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: Number(threadId), message: text }),
  });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`site answered ${res.status}`);
}

async function sendMessage(ws, data) {
  const threadId = String(data.threadId);
  if (siteUrl) await storeOnSite(data.token || ws.token, threadId, data.message);
  const frame = JSON.stringify({
    type: 'message',
    id: String(nextMessageId++),
    threadId,
    senderId: ws.userId,
    message: data.message,
    sentAt: new Date().toISOString(),
  });
  broadcastThread(threadId, frame, null);
  if (data.clientMessageId !== undefined) {
    send(ws, JSON.stringify({ type: 'ack', clientMessageId: data.clientMessageId }));
  }
}

wss.on('connection', (ws) => {
  ws.userId = null;
  ws.threads = new Set();
  ws.on('message', (raw) => {
    let data;
    try {
      data = JSON.parse(raw);
    } catch {
      send(ws, JSON.stringify({ type: 'error', message: 'Invalid JSON' }));
      return;
    }
    switch (data.type) {
      case 'user_connected': {
        ws.userId = String(data.userId);
        if (data.token) ws.token = data.token;
        if (!users.has(ws.userId)) users.set(ws.userId, new Set());
        users.get(ws.userId).add(ws);
        const frame = JSON.stringify({ type: 'user_connected', userId: ws.userId });
        for (const client of wss.clients) send(client, frame);
        break;
      }
      case 'join_thread': {
        const threadId = String(data.threadId);
        if (!threads.has(threadId)) threads.set(threadId, new Set());
        threads.get(threadId).add(ws);
        ws.threads.add(threadId);
        send(ws, JSON.stringify({ type: 'joined', threadId }));
        break;
      }
      case 'send_message':
        sendMessage(ws, data).catch((e) => {
          send(ws, JSON.stringify({ type: 'error', message: `Failed to send message: ${e.message}` }));
        });
        break;
      case 'typing': {
        const threadId = String(data.threadId);
        const frame = JSON.stringify({
          type: 'typing',
          threadId,
          userId: ws.userId,
          typing: data.typing !== false,
        });
        broadcastThread(threadId, frame, ws);
        break;
      }
      default:
        send(ws, JSON.stringify({ type: 'error', message: 'Unknown message type' }));
    }
  });
  ws.on('close', () => {
    for (const threadId of ws.threads) {
      const members = threads.get(threadId);
      if (members) {
        members.delete(ws);
        if (members.size === 0) threads.delete(threadId);
      }
    }
    if (ws.userId !== null) {
      const conns = users.get(ws.userId);
      if (conns) {
        conns.delete(ws);
        if (conns.size === 0) users.delete(ws.userId);
      }
    }
  });
  ws.on('error', () => {});
});

wss.on('listening', () => {
  console.log(`node baseline listening on ws://${host}:${port}`);
});

function stop() {
  wss.close();
  for (const ws of wss.clients) ws.terminate();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
