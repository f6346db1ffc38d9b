// The live website (issue 24), run by e2e.mjs against the plugin's test site
// (integrations/wordpress/bbrt/tests/run.sh with BBRT_TEST_SITE_CMD): carol has three tabs
// of a messages page (?bbrt-test-live=THREAD, the plugin's script with a stand-in for
// BuddyBoss that records each refresh) on http://wp.localhost:PORT; bbrt is on another
// origin (127.0.0.1:PORT2). bob, from his own browser context, sends and types through
// bbrt. bbrt must see one connection of carol's for her three tabs (the SharedWorker), and
// every tab must ask BuddyBoss to refresh the thread and the inbox, and show bob typing as
// text. bob and carol, so that the thread is a fresh one of this test's own.
import { readFileSync } from "node:fs";
import { logIn } from "./wp-login.mjs";

async function login(browser, site, login, pageUrl) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  await logIn(page, site, login, pageUrl);
  return { context, page };
}

/** In bob's page: a ticket connection that records its frames in window.frames_. */
async function connectInPage({ ticketUrl, nonce, bbrtUrl, userId }) {
  const r = await fetch(ticketUrl, { method: "POST", credentials: "same-origin", headers: { "X-WP-Nonce": nonce } });
  const { ticket } = await r.json();
  window.frames_ = [];
  window.ws = new WebSocket(`${bbrtUrl.replace(/^http/, "ws")}/?ticket=${encodeURIComponent(ticket)}`);
  window.ws.onmessage = (e) => window.frames_.push(JSON.parse(e.data));
  await new Promise((resolve, reject) => {
    window.ws.onopen = resolve;
    window.ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
  });
  window.ws.send(JSON.stringify({ type: "user_connected", userId: String(userId), requestId: "hi" }));
}

async function verifiedConnections(server) {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const m = text.match(/^bbrt_connections\{state="verified"\} (\d+)$/m);
  if (!m) throw new Error('no bbrt_connections{state="verified"} in /metrics');
  return Number(m[1]);
}

/** Polls fn until it returns a truthy value (a bound on waiting, not a figure); `what` may be a function, for details read at failure. */
async function until(fn, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`check failed: ${typeof what === "function" ? await what() : what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function liveWebsite(browser, { siteBbrt, check, step }) {
  const site = process.env.BBRT_WP_URL;
  const users = JSON.parse(readFileSync(process.env.BBRT_WP_FIXTURE, "utf8")).users;
  // The bbrt of the site under test, shared with the other WordPress tests.
  const server = await siteBbrt();
  const contexts = [];
  try {
    const bob = await login(browser, site, "bob", `${site}/?bbrt-test-page=1`);
    contexts.push(bob.context);
    const bobConfig = JSON.parse(await bob.page.textContent("#bbrt-config"));
    await bob.page.evaluate(connectInPage, bobConfig);
    await bob.page.evaluate((carol) => window.ws.send(JSON.stringify({
      type: "send_message", recipientId: carol, message: "hello carol", clientMessageId: `live-${Date.now()}`, requestId: "first",
    })), users.carol.id);
    const first = await until(() => bob.page.evaluate(() => window.frames_.find((f) => f.requestId === "first")), "bob's first send answered");
    check(first.type === "ack" && first.threadId, `bob's first send: ${JSON.stringify(first)}`);
    const thread = first.threadId;
    step(`bob started thread ${thread} with carol through bbrt`);
    const before = await verifiedConnections(server);

    const pageUrl = `${site}/?bbrt-test-live=${thread}`;
    const carol = await login(browser, site, "carol", pageUrl);
    contexts.push(carol.context);
    const tabs = [carol.page, await carol.context.newPage(), await carol.context.newPage()];
    const errors = [];
    for (const [i, tab] of tabs.entries()) {
      tab.setDefaultTimeout(15000);
      tab.on("pageerror", (e) => errors.push(`tab ${i + 1}: ${e.message}`));
      if (i > 0) await tab.goto(pageUrl);
    }
    const data = await carol.page.evaluate(() => window.bbrtLive);
    check(data && data.bbrtUrl === `http://${process.env.BBRT_WP_BBRT_LISTEN}` && data.userId === String(users.carol.id),
      `the plugin enqueued the script with its data: ${JSON.stringify(data && { ...data, nonce: "…" })}`);
    check(new URL(site).origin !== new URL(data.bbrtUrl).origin, "the page and bbrt are on different origins");
    check(await carol.page.evaluate(() => typeof window.SharedWorker === "function"), "Chromium has SharedWorker");
    await until(async () => (await verifiedConnections(server)) === before + 1, "bbrt sees carol's connection");
    // Each tab is loaded and has told the worker its thread; one connection stays.
    for (const tab of tabs) await tab.waitForLoadState("load");
    check((await verifiedConnections(server)) === before + 1,
      `three tabs, one connection: ${(await verifiedConnections(server)) - before}`);
    step("carol has three tabs of the messages page open; bbrt sees one connection of hers");

    await bob.page.evaluate((thread) => window.ws.send(JSON.stringify({ type: "send_message", threadId: thread, message: "live?", requestId: "second" })), thread);
    for (const [i, tab] of tabs.entries()) {
      const calls = await until(() => tab.evaluate((thread) => {
        const c = window.bbrtTestCalls;
        return c.includes(`messages.sync read {"id":${thread}}`) && c.includes("Backbone.trigger relistelements") ? c : null;
      }, Number(thread)), async () => `tab ${i + 1} refreshed the thread and the inbox for bob's message: `
        + `its calls ${JSON.stringify(await tab.evaluate(() => window.bbrtTestCalls))}, `
        + `bob's frames ${JSON.stringify(await bob.page.evaluate(() => window.frames_))}`);
      check(await tab.evaluate(() => window.bp.Nouveau.Messages.messages.before === "older-cursor"), `tab ${i + 1}: "load older" cursor kept`);
      step(`tab ${i + 1}: bob's message made BuddyBoss refresh: ${JSON.stringify(calls)}`);
    }

    await bob.page.evaluate((thread) => window.ws.send(JSON.stringify({ type: "typing", threadId: thread, typing: true })), thread);
    for (const [i, tab] of tabs.entries()) {
      const shown = await until(() => tab.evaluate(() => {
        const el = document.querySelector(".typing-indicator");
        return el && !el.classList.contains("bp-hide") && el.textContent ? { text: el.textContent, elements: el.children.length } : null;
      }), `tab ${i + 1} shows bob typing`);
      check(shown.text === "Bob <i>x</i> is typing…" && shown.elements === 0, `tab ${i + 1}: the name is text, not HTML: ${JSON.stringify(shown)}`);
    }
    step('every tab shows "Bob <i>x</i> is typing…" as text in .typing-indicator');

    check(errors.length === 0, `no page errors: ${JSON.stringify(errors)}`);
  } finally {
    for (const c of contexts) await c.close();
  }
}
