// bench/site-events.sh's client: sends messages on the WordPress site's own path (its
// /bbrt-bench-send page, one request at a time) and, with --ws, is bob's bbrt connection
// joined to the thread, timing each `message` frame from the site's hook to its arrival.
// All clocks are this machine's wall clock (PHP's microtime(true), Node's
// performance.timeOrigin + performance.now()), so the two ends compare directly.
//
//   node site-events-client.js --site URL --n N [--warmup W] [--ws URL --user ID --token T]
//   node site-events-client.js --summarize FILE
//
// The first prints one JSON line: every request's time and (with --ws) every hook→frame
// time, in ms, and the frames missing. The second reads such lines (one per round, with a
// `case` field added) and prints, per case, {case, request_ms, hook_to_frame_ms, missing}
// with count, p50, p99 and max.
"use strict";
const WebSocket = require("ws");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const n = Number(args.n || 300);
const warmup = Number(args.warmup || 20);
const frameTimeoutMs = 5000;
const now = () => performance.timeOrigin + performance.now();

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const rank = (p) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
  const r = (x) => Math.round(x * 1000) / 1000;
  return s.length ? { count: s.length, p50: r(rank(50)), p99: r(rank(99)), max: r(s[s.length - 1]) } : { count: 0 };
}

async function send(thread) {
  const started = now();
  const res = await fetch(`${args.site}${thread ? `?thread=${thread}` : ""}`);
  const body = await res.json();
  const took = now() - started;
  if (res.status !== 200 || !body.message_id) throw new Error(`site answered ${res.status}: ${JSON.stringify(body)}`);
  return { took, ...body };
}

/** bob's connection: identifies, then hands every `message` frame's arrival time to `onMessage`. */
function connect(onMessage) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(args.ws);
    const pending = new Map();
    ws.on("message", (data) => {
      const at = now();
      const frame = JSON.parse(data.toString());
      if (frame.type === "message") onMessage(String(frame.id), at);
      else if (frame.type === "error") reject(new Error(`bbrt error frame: ${data}`));
      const waiter = frame.requestId && pending.get(frame.requestId);
      if (waiter) { pending.delete(frame.requestId); waiter(frame); }
    });
    ws.on("error", reject);
    const ask = (frame) => new Promise((done) => { pending.set(frame.requestId, done); ws.send(JSON.stringify(frame)); });
    ws.on("open", async () => {
      await ask({ type: "user_connected", userId: String(args.user), token: args.token, requestId: "identify" });
      resolve({ ws, ask });
    });
  });
}

async function main() {
  const arrivals = new Map(); // message id -> arrival time, or the waiter's resolver
  let conn = null;
  if (args.ws) {
    conn = await connect((id, at) => {
      const waiter = arrivals.get(id);
      arrivals.set(id, at);
      if (typeof waiter === "function") waiter(at);
    });
  }
  const frameOf = (id) => {
    const seen = arrivals.get(id);
    if (typeof seen === "number") return Promise.resolve(seen);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), frameTimeoutMs);
      arrivals.set(id, (at) => { clearTimeout(timer); resolve(at); });
    });
  };
  const first = await send(0); // the alice–bob thread (created by the first send)
  const thread = first.thread_id;
  if (conn) {
    // The tests' BuddyBoss stand-in's thread object names no recipients, so bbrt learns the
    // thread's participants from the first message's event; the join waits for it.
    if ((await frameOf(String(first.message_id))) === null) throw new Error("no frame for the first message");
    const joined = await conn.ask({ type: "join_thread", threadId: String(thread), requestId: "join" });
    if (joined.type !== "joined") throw new Error(`join_thread answered ${JSON.stringify(joined)}`);
  }
  const requests = [];
  const latencies = [];
  let missing = 0;
  for (let i = 0; i < warmup + n; i++) {
    const sent = await send(thread);
    const arrived = conn ? await frameOf(String(sent.message_id)) : null;
    if (i < warmup) continue;
    requests.push(sent.took);
    if (conn) {
      if (arrived === null) missing++;
      else latencies.push(arrived - sent.hook_at * 1000);
    }
  }
  const out = { requests };
  if (conn) {
    out.latencies = latencies;
    out.missing = missing;
    conn.ws.close();
  }
  console.log(JSON.stringify(out));
}

function summarize(file) {
  const cases = new Map();
  for (const line of require("fs").readFileSync(file, "utf8").split("\n").filter(Boolean)) {
    const run = JSON.parse(line);
    const c = cases.get(run.case) || { requests: [], latencies: [], missing: 0, ws: false };
    c.requests.push(...run.requests);
    if (run.latencies) { c.ws = true; c.latencies.push(...run.latencies); c.missing += run.missing; }
    cases.set(run.case, c);
  }
  for (const [name, c] of cases) {
    const out = { case: name, request_ms: summary(c.requests) };
    if (c.ws) { out.hook_to_frame_ms = summary(c.latencies); out.missing = c.missing; }
    console.log(JSON.stringify(out));
  }
}

(args.summarize ? Promise.resolve().then(() => summarize(args.summarize)) : main()).catch((e) => { console.error(e.message || e); process.exit(1); });
