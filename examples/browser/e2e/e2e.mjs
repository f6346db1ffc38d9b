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
//
// Exits non-zero on any failure; leaves a screenshot of the first.
//
//   node e2e.mjs                     # uses ../../../target/debug/bbrt-server
//   BBRT_SERVER_BIN=path node e2e.mjs
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";
import { liveWebsite } from "./live-website.mjs";

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

async function tickets(browser) {
  const site = process.env.BBRT_WP_URL;
  const listen = process.env.BBRT_WP_BBRT_LISTEN;
  const users = JSON.parse(readFileSync(process.env.BBRT_WP_FIXTURE, "utf8")).users;
  const server = await startServer(
    [
      "--listen", listen, "--buddyboss-url", process.env.BBRT_WP_API,
      "--public-url", `http://${listen}`, "--ticket-issuer", site, "--allowed-origins", site,
      "--log", "debug",
    ],
    { BBRT_TICKET_KEYS: process.env.BBRT_WP_TICKET_KEYS },
  );
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const pageUrl = `${site}/?bbrt-test-page=1`;
    await page.goto(`${site}/wp-login.php?redirect_to=${encodeURIComponent(pageUrl)}`);
    await page.fill("#user_login", "alice");
    await page.fill("#user_pass", "alice-password");
    await Promise.all([page.waitForURL(pageUrl), page.click("#wp-submit")]);
    const config = JSON.parse(await page.textContent("#bbrt-config"));
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
    server.child.kill("SIGTERM");
  }
}

const tests = [["the example page", examplePage]];
if (process.env.BBRT_WP_URL) tests.push(["connection tickets from the WordPress plugin", tickets]);
if (process.env.BBRT_WP_URL) tests.push(["the live website", (b) => liveWebsite(b, { startServer, check, step })]);

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
console.log(`browser e2e: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
