// The browser tests, in one launch of Debian's Chromium driven by playwright-core:
//
// 1. The example page against a real bbrt-server on the embedded development site: two
//    people connect, join a thread, see each other online, type, chat, and make a call
//    whose WebRTC connection comes up over loopback, then hang up.
// 2. With BBRT_WP_URL set (integrations/wordpress/bbrt/tests/run.sh, asked by
//    scripts/test.sh through BBRT_TEST_SITE_CMD): connection tickets. A member logs in
//    through wp-login.php on the WordPress test site at http://wp.localhost:PORT; a page of
//    that origin gets a ticket from the plugin (the wp_rest nonce from the page) and
//    connects to a bbrt at 127.0.0.1:PORT2 whose site is that WordPress. bbrt must
//    identify the member by the ticket (bbrt_tickets_total), refuse the ticket a second
//    time, and not identify the same page connecting without one; with a second ticket the
//    page sends a message, stored through the plugin with the ticket's site credential.
// 3. With BBRT_WP_URL set: site events, on the same bbrt (started with the site's event
//    ring, BBRT_WP_EVENT_KEYS). Bob's page connects with a ticket and joins the thread; then
//    things happen ON THE SITE, not through bbrt: alice posts to BuddyBoss's REST route with
//    her Application Password, bob reads the thread through the site. The plugin signs and
//    POSTs each event to bbrt's /site/events; bob must receive the `message` frames (id,
//    thread, sender, text, his unread counts) and the `read` frame, bbrt must count each
//    event accepted (bbrt_site_events_total), and the exact request replayed must be
//    counted a duplicate and deliver nothing twice.
// 4. A call forced through a TURN relay: Debian's coturn (use-auth-secret) on loopback, a
//    bbrt that mints its credentials, two relay-only pages with a fake microphone that
//    connect with bytes received over a relay candidate pair; a credential past its expiry
//    gets no relay candidate.
//
// Exits non-zero on any failure; leaves a screenshot of the first.
//
//   node e2e.mjs                     # uses ../../../target/debug/bbrt-server
//   BBRT_SERVER_BIN=path node e2e.mjs
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";
import { liveWebsite } from "./live-website.mjs";
import { logIn } from "./wp-login.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const bin = process.env.BBRT_SERVER_BIN || path.join(root, "target/debug/bbrt-server");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shot = path.join(root, "target/e2e-browser.png");

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function waitFor(url, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${url} did not answer in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts a bbrt-server; resolves once /healthz answers. */
async function startServer(args, env = {}) {
  const listen = args[args.indexOf("--listen") + 1];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let log = "";
  for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
    from.on("data", (d) => {
      log += d;
      to.write(d);
    });
  }
  const started = new Promise((_, reject) => {
    child.on("error", (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
    child.on("exit", (code) => reject(new Error(`${bin} exited (${code})`)));
  });
  await Promise.race([waitFor(`http://${listen}/healthz`, 15000), started]);
  return { child, log: () => log, url: `http://${listen}` };
}

const step = (what) => console.log(`  ${what}`);

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function examplePage(browser) {
  const port = await freePort();
  const server = await startServer(["--listen", `127.0.0.1:${port}`, "--serve-examples", "--log", "warn"]);
  try {
    const page = async (user, other) => {
      const p = await browser.newPage();
      p.setDefaultTimeout(15000);
      await p.goto(`http://127.0.0.1:${port}/example`);
      await p.fill("#user", user);
      await p.fill("#token", `dev:${user}`);
      await p.fill("#recipient", other);
      await p.click("#connect");
      await p.waitForFunction(() => document.querySelector("#log").textContent.includes('"requestId":"hello"'));
      await p.click("#join");
      await p.waitForFunction(() => document.querySelector("#log").textContent.includes('"type":"joined"'));
      return p;
    };
    const alice = await page("alice", "bob");
    const bob = await page("bob", "alice");
    step("both connected and joined");

    await alice.waitForSelector("#people li.online:text-is('bob')");
    step("alice sees bob online");

    await alice.type("#text", "hel");
    await bob.waitForFunction(() => document.querySelector("#typing").textContent.includes("alice is typing"));
    step("bob sees alice typing");

    await alice.type("#text", "lo bob");
    await alice.press("#text", "Enter");
    await bob.waitForSelector("#messages li:has-text('alice: hello bob')");
    await alice.waitForSelector("#messages li.mine:has-text('alice: hello bob')");
    step("the message reached bob and echoed to alice");

    await alice.click("#callBtn");
    await bob.waitForFunction(() => document.querySelector("#callText").textContent.includes("incoming call from alice"));
    await bob.click("#accept");
    await alice.waitForFunction(() => document.querySelector("#callText").textContent.includes("in call with bob"));
    const connected = () => typeof call !== "undefined" && call && call.pc && call.pc.connectionState === "connected";
    await alice.waitForFunction(connected, null, { timeout: 20000 });
    await bob.waitForFunction(connected, null, { timeout: 20000 });
    step("the call rang, was accepted, and WebRTC connected over the server's signaling");

    await alice.click("#hangup");
    await bob.waitForFunction(() => document.querySelector("#callText").textContent.includes("ended: hangup"));
    step("hang-up reached bob");

    await alice.screenshot({ path: shot, fullPage: true });
    step(`screenshot: ${shot}`);
    await alice.close();
    await bob.close();
  } finally {
    server.child.kill("SIGTERM");
  }
}

/** Starts Debian's coturn on a free port, loopback only, with `secret` for use-auth-secret. */
async function startCoturn(secret) {
  const port = await freePort();
  const minPort = 40000 + Math.floor(Math.random() * 20000);
  const args = [
    "-n", `--listening-port=${port}`, "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
    `--min-port=${minPort}`, `--max-port=${minPort + 16}`,
    "--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1",
    `--cli-password=${randomBytes(12).toString("hex")}`,
    "--use-auth-secret", `--static-auth-secret=${secret}`, "--realm=bbrt.test",
    "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
  ];
  const child = spawn(process.env.TURNSERVER || "/usr/bin/turnserver", args, { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const failed = new Promise((_, reject) => {
    child.on("error", (e) => reject(new Error(`cannot start turnserver: ${e.message}`)));
    child.on("exit", (code) => reject(new Error(`turnserver exited (${code}): ${log}`)));
  });
  // Ready once it answers a STUN binding request on its UDP port.
  const listening = (async () => {
    const deadline = Date.now() + 10000;
    const probe = createSocket("udp4");
    try {
      for (;;) {
        if (Date.now() > deadline) throw new Error(`turnserver did not start: ${log}`);
        const request = Buffer.concat([Buffer.from([0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42]), randomBytes(12)]);
        const answered = new Promise((resolve) => {
          probe.once("message", () => resolve(true));
          setTimeout(() => resolve(false), 200);
        });
        probe.send(request, port, "127.0.0.1");
        if (await answered) return;
      }
    } finally {
      probe.close();
    }
  })();
  await Promise.race([listening, failed]);
  return { child, port, log: () => log };
}

/**
 * In the page: identifies as `user` with bbrt at `url`, asks for ICE servers, and builds
 * a relay-only peer connection (window.pc) with a fake microphone from what bbrt issued.
 */
async function relayPeerInPage({ url, user }) {
  const ice = await new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: "user_connected", userId: user, token: `dev:${user}`, requestId: "hello" }));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.requestId === "hello") {
        if (f.type !== "ack") reject(new Error(e.data));
        ws.send(JSON.stringify({ type: "get_ice_servers", requestId: "ice" }));
      }
      if (f.requestId === "ice") {
        ws.close();
        if (f.type === "ice_servers") resolve(f);
        else reject(new Error(e.data));
      }
    };
    ws.onerror = () => reject(new Error("websocket error"));
  });
  window.pc = new RTCPeerConnection({ iceServers: ice.iceServers, iceTransportPolicy: "relay" });
  const media = await navigator.mediaDevices.getUserMedia({ audio: true });
  for (const track of media.getTracks()) window.pc.addTrack(track, media);
  window.gathered = () =>
    new Promise((resolve) => {
      if (window.pc.iceGatheringState === "complete") return resolve();
      window.pc.addEventListener("icegatheringstatechange", () => {
        if (window.pc.iceGatheringState === "complete") resolve();
      });
    });
  return ice;
}

/** In the page: the offer (or the answer to `offer`), after gathering every candidate. */
async function describeInPage(offer) {
  if (offer) await window.pc.setRemoteDescription(offer);
  const desc = offer ? await window.pc.createAnswer() : await window.pc.createOffer();
  await window.pc.setLocalDescription(desc);
  await Promise.race([window.gathered(), new Promise((r) => setTimeout(r, 15000))]);
  return window.pc.localDescription.toJSON();
}

/** In the page: the selected candidate pair's local type and bytes received. */
async function selectedPairInPage() {
  const stats = await window.pc.getStats();
  let pair;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return { local: local?.candidateType, remote: remote?.candidateType, bytesReceived: pair.bytesReceived, state: pair.state };
}

async function relayedCall(browser) {
  const secret = randomBytes(24).toString("hex");
  const turn = await startCoturn(secret);
  const servers = [];
  try {
    const bbrt = async (ttl) => {
      const port = await freePort();
      const server = await startServer(
        ["--listen", `127.0.0.1:${port}`, "--serve-examples", "--log", "warn",
          "--ice-urls", `turn:127.0.0.1:${turn.port}?transport=udp`, "--turn-credential-ttl", ttl],
        { BBRT_TURN_SECRET: secret },
      );
      servers.push(server);
      return { port, ws: `ws://127.0.0.1:${port}/` };
    };
    const main = await bbrt("10m");
    const open = async () => {
      const p = await browser.newPage();
      p.setDefaultTimeout(20000);
      await p.goto(`http://127.0.0.1:${main.port}/example`);
      return p;
    };
    const alice = await open();
    const bob = await open();
    const ice = await alice.evaluate(relayPeerInPage, { url: main.ws, user: "alice" });
    check(ice.iceServers.length === 1 && /^\d+:alice$/.test(ice.iceServers[0].username), `bbrt issued a TURN credential: ${JSON.stringify(ice.iceServers.map((s) => s.username))}`);
    await bob.evaluate(relayPeerInPage, { url: main.ws, user: "bob" });
    const offer = await alice.evaluate(describeInPage, null);
    check(/typ relay/.test(offer.sdp), "alice gathered a relay candidate with bbrt's credential");
    const answer = await bob.evaluate(describeInPage, offer);
    check(/typ relay/.test(answer.sdp), "bob gathered a relay candidate with bbrt's credential");
    await alice.evaluate((a) => window.pc.setRemoteDescription(a), answer);
    const connected = () => window.pc.connectionState === "connected";
    await alice.waitForFunction(connected);
    await bob.waitForFunction(connected);
    for (const [who, p] of [["alice", alice], ["bob", bob]]) {
      await p.waitForFunction(async () => {
        const s = await selectedPairInPage();
        return s && s.bytesReceived > 0;
      }).catch(() => {});
      const pair = await p.evaluate(selectedPairInPage);
      check(pair && pair.local === "relay" && pair.bytesReceived > 0, `${who} receives over a relay pair: ${JSON.stringify(pair)}`);
    }
    step("both pages connected through coturn with bbrt's credentials, bytes over a relay pair");
    await alice.close();
    await bob.close();

    // A credential past its expiry allocates nothing: no relay candidate at all.
    const short = await bbrt("1s");
    const late = await browser.newPage();
    late.setDefaultTimeout(20000);
    await late.goto(`http://127.0.0.1:${short.port}/example`);
    const stale = await late.evaluate(relayPeerInPage, { url: short.ws, user: "carol" });
    const expiry = Number(stale.iceServers[0].username.split(":")[0]);
    while (Date.now() / 1000 <= expiry + 1) await new Promise((r) => setTimeout(r, 200));
    const expired = await late.evaluate(describeInPage, null);
    check(!/typ relay/.test(expired.sdp), "an expired credential gets no relay candidate");
    step("an expired credential is refused by coturn");
    await late.close();
  } finally {
    for (const s of servers) s.child.kill("SIGTERM");
    turn.child.kill("SIGTERM");
  }
}

/** In the page: connects to `url`, identifies as `userId`; the answer, or the close code. */
function identifyInPage({ url, userId }) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => ws.send(JSON.stringify({ type: "user_connected", userId: String(userId), requestId: "identify" }));
    ws.onmessage = (e) => {
      const frame = JSON.parse(e.data);
      if (frame.requestId === "identify") {
        resolve({ answer: frame });
        ws.close();
      }
    };
    ws.onclose = (e) => resolve({ closed: e.code });
  });
}

/**
 * In the page: connects with `url`, identifies as `userId`, sends `text` to `recipientId`
 * (a new thread, stored by the site); the frames up to the send's answer and its echo.
 */
function sendInPage({ url, userId, recipientId, text }) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    const frames = [];
    ws.onopen = () => ws.send(JSON.stringify({ type: "user_connected", userId: String(userId), requestId: "identify" }));
    ws.onmessage = (e) => {
      const frame = JSON.parse(e.data);
      frames.push(frame);
      if (frame.requestId === "identify" && frame.type === "ack") {
        ws.send(JSON.stringify({ type: "send_message", recipientId: String(recipientId), message: text, requestId: "send" }));
      }
      const answered = frames.find((f) => f.requestId === "send" || (f.requestId === "identify" && f.type === "error"));
      if (answered && (answered.type !== "ack" || frames.some((f) => f.type === "message"))) {
        resolve({ frames });
        ws.close();
      }
    };
    ws.onclose = (e) => resolve({ frames, closed: e.code });
  });
}

/** In the page: POST the ticket route with the page's nonce and login cookie. */
async function ticketInPage({ ticketUrl, nonce }) {
  const r = await fetch(ticketUrl, { method: "POST", credentials: "same-origin", headers: { "X-WP-Nonce": nonce } });
  return { status: r.status, cacheControl: r.headers.get("cache-control"), body: await r.json() };
}

function claimsOf(ticket) {
  return JSON.parse(Buffer.from(ticket.split(".")[1], "base64url").toString());
}

async function ticketsCounted(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const count = (outcome) => {
    const m = text.match(new RegExp(`^bbrt_tickets_total\\{outcome="${outcome}"\\} (\\d+)$`, "m"));
    if (!m) throw new Error(`no bbrt_tickets_total{outcome="${outcome}"} in /metrics`);
    return Number(m[1]);
  };
  return { accepted: count("accepted"), refused: count("refused") };
}

let siteServer = null;

/**
 * The bbrt whose site is the WordPress under test (its ticket and event rings), started by
 * the first test that needs it and shared by the rest; stopped once all have run.
 */
async function siteBbrt() {
  if (!siteServer) {
    const site = process.env.BBRT_WP_URL;
    const listen = process.env.BBRT_WP_BBRT_LISTEN;
    siteServer = await startServer(
      [
        "--listen", listen, "--buddyboss-url", process.env.BBRT_WP_API,
        "--public-url", `http://${listen}`, "--ticket-issuer", site, "--allowed-origins", site,
        "--log", "debug",
      ],
      { BBRT_TICKET_KEYS: process.env.BBRT_WP_TICKET_KEYS, BBRT_SITE_EVENT_KEYS: process.env.BBRT_WP_EVENT_KEYS },
    );
  }
  return siteServer;
}

/** Logs `login` in through wp-login.php in `context`; the test page and its config. */
async function memberPage(context, login) {
  const site = process.env.BBRT_WP_URL;
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const pageUrl = `${site}/?bbrt-test-page=1`;
  await logIn(page, site, login, pageUrl);
  return { page, config: JSON.parse(await page.textContent("#bbrt-config")) };
}

async function tickets(browser) {
  const site = process.env.BBRT_WP_URL;
  const listen = process.env.BBRT_WP_BBRT_LISTEN;
  const users = JSON.parse(readFileSync(process.env.BBRT_WP_FIXTURE, "utf8")).users;
  const server = await siteBbrt();
  const context = await browser.newContext();
  try {
    const { page, config } = await memberPage(context, "alice");
    check(config.userId === users.alice.id, `the page's member is alice (${config.userId})`);
    check(config.bbrtUrl === `http://${listen}`, `the page names the bbrt under test (${config.bbrtUrl})`);
    const siteCookies = await context.cookies(site);
    check(siteCookies.some((c) => c.name.startsWith("wordpress_logged_in_")), "wp-login.php set the login cookie");
    check((await context.cookies(server.url)).length === 0, "the browser has no cookie for bbrt's origin");
    step("alice logged in through wp-login.php; the page has a wp_rest nonce");

    const issued = await page.evaluate(ticketInPage, config);
    check(issued.status === 200, `the ticket route answered ${issued.status}: ${JSON.stringify(issued.body)}`);
    check(/no-store/.test(issued.cacheControl || ""), `no-store (${issued.cacheControl})`);
    const ticket = issued.body.ticket;
    const claims = claimsOf(ticket);
    check(claims.sub === String(users.alice.id) && claims.aud === `http://${listen}` && claims.iss === site,
      `the ticket's claims: ${JSON.stringify({ sub: claims.sub, aud: claims.aud, iss: claims.iss })}`);
    step("the page got a ticket for alice from the plugin");
    const before = await ticketsCounted(server);
    check(before.accepted === 0 && before.refused === 0, `no ticket seen yet: ${JSON.stringify(before)}`);

    // The plugin's BBRT_URL is bbrt's public http(s) URL; its WebSocket is the same with ws(s).
    const ws = config.bbrtUrl.replace(/^http/, "ws");
    const byTicket = await page.evaluate(identifyInPage, { url: `${ws}/?ticket=${encodeURIComponent(ticket)}`, userId: config.userId });
    check(byTicket.answer && byTicket.answer.type === "ack", `identified by the ticket: ${JSON.stringify(byTicket)}`);
    const accepted = await ticketsCounted(server);
    check(accepted.accepted === 1 && accepted.refused === 0, `bbrt counted the ticket accepted: ${JSON.stringify(accepted)}`);
    step(`bbrt identified the page's connection as user ${config.userId} by its ticket (bbrt_tickets_total{outcome="accepted"} 1)`);

    const again = await page.evaluate(identifyInPage, { url: `${ws}/?ticket=${encodeURIComponent(ticket)}`, userId: config.userId });
    check(again.closed === 4001, `the same ticket again is refused with 4001: ${JSON.stringify(again)}`);
    const reused = await ticketsCounted(server);
    check(reused.accepted === 1 && reused.refused === 1, `bbrt counted the reuse refused: ${JSON.stringify(reused)}`);
    step("the same ticket a second time: closed 4001 (single use)");

    const noTicket = await page.evaluate(identifyInPage, { url: `${ws}/`, userId: config.userId });
    check(noTicket.answer && noTicket.answer.type === "error" && noTicket.answer.code === "unauthenticated", `without a ticket the member is not identified: ${JSON.stringify(noTicket)}`);
    const after = await ticketsCounted(server);
    check(after.accepted === 1 && after.refused === 1, `no ticket involved: ${JSON.stringify(after)}`);
    step(`without a ticket, the same page is not identified: ${noTicket.answer.code}`);

    const second = await page.evaluate(ticketInPage, config);
    check(second.status === 200, `a second ticket: ${second.status}`);
    const text = `by ticket ${Date.now()}`;
    const sent = await page.evaluate(sendInPage, {
      url: `${ws}/?ticket=${encodeURIComponent(second.body.ticket)}`, userId: config.userId, recipientId: users.bob.id, text,
    });
    const ack = sent.frames.find((f) => f.requestId === "send");
    const echo = sent.frames.find((f) => f.type === "message");
    check(ack && ack.type === "ack" && echo && echo.senderId === String(users.alice.id) && echo.message === text && echo.id === ack.id,
      `the send is stored by the site as alice's: ${JSON.stringify(sent)}`);
    const sentCount = await ticketsCounted(server);
    check(sentCount.accepted === 2 && sentCount.refused === 1, `the second ticket accepted: ${JSON.stringify(sentCount)}`);
    // bbrt's debug lines name the site's routes: the ticket's site credential was accepted by
    // the plugin for users/me, and the send went to the plugin's route.
    for (const line of ['route="wp/v2/users/me" status=200', 'method=POST route="bbrt/v1/messages" status=200']) {
      check(server.log().includes(line), `bbrt's log has ${line}`);
    }
    step(`with a second ticket, a message to bob went through the plugin's send route as alice's (message ${ack.id})`);

    check(server.log().includes("connection ticket refused"), "bbrt's log is read");
    for (const secret of [ticket, ticket.split(".")[2], claims.sc, second.body.ticket]) {
      check(!server.log().includes(secret), "neither the ticket nor its site credential is in bbrt's log");
    }
    step("bbrt's log (debug) holds no ticket");
  } finally {
    await context.close();
  }
}

/**
 * In the page: connects with `url`, identifies as `userId` and keeps the socket open as
 * window.bbrtSocket, every frame received in window.bbrtFrames; the identify answer.
 */
function connectInPage({ url, userId }) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    window.bbrtSocket = ws;
    window.bbrtFrames = [];
    ws.onopen = () => ws.send(JSON.stringify({ type: "user_connected", userId: String(userId), requestId: "identify" }));
    ws.onmessage = (e) => {
      const frame = JSON.parse(e.data);
      window.bbrtFrames.push(frame);
      if (frame.requestId === "identify") resolve({ answer: frame });
    };
    ws.onclose = (e) => resolve({ closed: e.code });
  });
}

/** The first frame of the page's socket with all of `fields`, waited for (15 s at most). */
async function frameWith(page, fields) {
  try {
    const handle = await page.waitForFunction(
      (want) => window.bbrtFrames.find((f) => Object.entries(want).every(([k, v]) => JSON.stringify(f[k]) === JSON.stringify(v))),
      fields,
    );
    return await handle.jsonValue();
  } catch (e) {
    const seen = await page.evaluate(() => window.bbrtFrames).catch(() => "unknown");
    throw new Error(`no frame with ${JSON.stringify(fields)} (${e.message}); received: ${JSON.stringify(seen)}`);
  }
}

async function siteEventsCounted(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const count = (outcome) => {
    const m = text.match(new RegExp(`^bbrt_site_events_total\\{outcome="${outcome}"\\} (\\d+)$`, "m"));
    if (!m) throw new Error(`no bbrt_site_events_total{outcome="${outcome}"} in /metrics`);
    return Number(m[1]);
  };
  return { accepted: count("accepted"), duplicate: count("duplicate") };
}

/** The site's REST API as `user` of the fixture (their Application Password), not bbrt. */
async function onSite(user, route, body) {
  const r = await fetch(`${process.env.BBRT_WP_API}${route}`, {
    method: "POST",
    headers: { Authorization: `Basic ${user.basic}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

/**
 * The plugin's request for the event `matches` picks, once the test mu-plugin has written it
 * down (after bbrt answered it); waited for, 15 s at most.
 */
async function eventSent(matches) {
  const deadline = Date.now() + 15000;
  for (;;) {
    let lines = [];
    try {
      lines = readFileSync(process.env.BBRT_WP_EVENTS_SENT, "utf8").split("\n").filter(Boolean);
    } catch {}
    const found = lines.map((l) => JSON.parse(l)).filter((e) => matches(JSON.parse(e.body)));
    if (found.length) return found;
    if (Date.now() > deadline) throw new Error("the site's event request was not written down in 15 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function siteEvents(browser) {
  const users = JSON.parse(readFileSync(process.env.BBRT_WP_FIXTURE, "utf8")).users;
  const server = await siteBbrt();
  const context = await browser.newContext();
  try {
    const { page, config } = await memberPage(context, "bob");
    check(config.userId === users.bob.id, `the page's member is bob (${config.userId})`);
    const issued = await page.evaluate(ticketInPage, config);
    check(issued.status === 200, `bob's ticket: ${issued.status}`);
    const ws = config.bbrtUrl.replace(/^http/, "ws");
    const connected = await page.evaluate(connectInPage, { url: `${ws}/?ticket=${encodeURIComponent(issued.body.ticket)}`, userId: config.userId });
    check(connected.answer && connected.answer.type === "ack", `bob identified by his ticket: ${JSON.stringify(connected)}`);
    step("bob's page connected to bbrt with a ticket");

    const start = await siteEventsCounted(server);
    const alice = String(users.alice.id);
    const bob = String(users.bob.id);
    const send = async (text) => {
      const r = await onSite(users.alice, "/buddyboss/v1/messages", { recipients: [users.bob.id], message: text });
      check(r.status === 200 && r.body.last_sender_id === users.alice.id, `alice's send on the site: ${JSON.stringify(r)}`);
      return { threadId: String(r.body.id), id: String(r.body.message_id), text };
    };
    const first = await send(`on the site ${Date.now()}`);
    const firstFrame = await frameWith(page, { type: "message", id: first.id });
    check(firstFrame.threadId === first.threadId && firstFrame.senderId === alice && firstFrame.message === first.text,
      `bob got alice's message as the site stored it: ${JSON.stringify(firstFrame)}`);
    const unread = firstFrame.unread;
    check(unread && unread.thread >= 1 && unread.total >= unread.thread, `bob's copy carries his unread counts: ${JSON.stringify(unread)}`);
    const afterFirst = await siteEventsCounted(server);
    check(afterFirst.accepted === start.accepted + 1 && afterFirst.duplicate === start.duplicate,
      `bbrt accepted the signed event: ${JSON.stringify({ start, afterFirst })}`);
    step(`a message alice posted to BuddyBoss's REST route reached bob (message ${first.id}, unread ${JSON.stringify(unread)}; bbrt_site_events_total{outcome="accepted"} +1)`);

    await page.evaluate((threadId) => window.bbrtSocket.send(JSON.stringify({ type: "join_thread", threadId, requestId: "join" })), first.threadId);
    const joined = await frameWith(page, { requestId: "join" });
    check(joined.type === "joined" && joined.threadId === first.threadId, `bob joined the thread: ${JSON.stringify(joined)}`);
    const second = await send(`again on the site ${Date.now()}`);
    const secondFrame = await frameWith(page, { type: "message", id: second.id });
    check(second.threadId === first.threadId && secondFrame.threadId === first.threadId && secondFrame.senderId === alice
      && secondFrame.message === second.text, `the second message in the joined thread: ${JSON.stringify(secondFrame)}`);
    check(secondFrame.unread && secondFrame.unread.thread === unread.thread + 1 && secondFrame.unread.total === unread.total + 1,
      `bob's unread counts went up by one: ${JSON.stringify(secondFrame.unread)} after ${JSON.stringify(unread)}`);
    step(`bob joined thread ${first.threadId}; alice's next message on the site reached him with unread ${JSON.stringify(secondFrame.unread)}`);

    // The plugin's own request for the second message, replayed byte for byte: bbrt answers
    // 200 (the site must not retry) and counts it a duplicate, and bob gets nothing more.
    const sent = await eventSent((event) => event.type === "message.sent" && String(event.data.message_id) === second.id);
    check(sent.length === 1 && sent[0].status === 200, `the plugin sent the event once and bbrt took it: ${JSON.stringify(sent.map((e) => e.status))}`);
    check(/^v1=[0-9a-f]{64}$/.test(sent[0].headers["X-BBRT-Signature"]), "the plugin's request is signed");
    const replay = await fetch(sent[0].url, { method: "POST", headers: sent[0].headers, body: sent[0].body });
    check(replay.status === 200, `the replay answered ${replay.status}`);
    const afterReplay = await siteEventsCounted(server);
    check(afterReplay.accepted === start.accepted + 2 && afterReplay.duplicate === start.duplicate + 1,
      `bbrt counted the replay a duplicate: ${JSON.stringify(afterReplay)}`);

    const read = await onSite(users.bob, `/bbrt-test/v1/threads/${first.threadId}/read`, {});
    check(read.status === 200 && read.body.changed === 1, `bob read the thread on the site: ${JSON.stringify(read)}`);
    const readFrame = await frameWith(page, { type: "read", threadId: first.threadId });
    check(readFrame.userId === bob && readFrame.unread && readFrame.unread.thread === 0
      && readFrame.unread.total === unread.total + 1 - (unread.thread + 1),
      `bob's read reached his socket with his unread counts: ${JSON.stringify(readFrame)}`);
    // The read was reported after the replay, and bbrt keeps one connection's frames in
    // order: had the replay delivered anything, it would be here by now.
    const copies = await page.evaluate((id) => window.bbrtFrames.filter((f) => f.type === "message" && f.id === id).length, second.id);
    check(copies === 1, `the replayed event delivered nothing more (${copies} copies)`);
    const end = await siteEventsCounted(server);
    check(end.accepted === start.accepted + 3 && end.duplicate === start.duplicate + 1, `three events accepted, one duplicate: ${JSON.stringify(end)}`);
    step(`the replayed request counted a duplicate and delivered nothing twice; bob's read on the site reached him as read (unread ${JSON.stringify(readFrame.unread)})`);

    check(server.log().includes('site events accepted kids=["events"]'), "bbrt's log is read");
    const secret = process.env.BBRT_WP_EVENT_KEYS.split(":")[1];
    for (const hidden of [secret, sent[0].headers["X-BBRT-Signature"].slice(3)]) {
      check(!server.log().includes(hidden), "neither the event key nor a signature is in bbrt's log");
    }
    step("bbrt's log (debug) holds neither the event key nor a signature");
  } finally {
    await context.close();
  }
}

const tests = [["the example page", examplePage]];
tests.push(["a call relayed through coturn with credentials bbrt issued", relayedCall]);
if (process.env.BBRT_WP_URL) {
  tests.push(["connection tickets from the WordPress plugin", tickets]);
  tests.push(["site events from the WordPress plugin reach a WebSocket client", siteEvents]);
  tests.push(["the live website", (b) => liveWebsite(b, { siteBbrt, check, step })]);
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  ],
});
let passed = 0;
let failed = 0;
for (const [name, test] of tests) {
  console.log(name);
  const start = performance.now();
  try {
    await test(browser);
    passed += 1;
    console.log(`  passed in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  } catch (e) {
    failed += 1;
    console.error(`browser e2e failed: ${name}:`, e);
  }
}
await browser.close();
if (siteServer) siteServer.child.kill("SIGTERM");
console.log(`browser e2e: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
