// The example page in a real browser (Debian's Chromium, driven by playwright-core)
// against a real bbrt-server on the embedded development site: two people connect, join a
// thread, see each other online, type, chat, and make a call whose WebRTC connection comes
// up over loopback, then hang up. Exits non-zero on any failure; leaves a screenshot.
//
//   node e2e.mjs                     # uses ../../../target/debug/bbrt-server
//   BBRT_SERVER_BIN=path node e2e.mjs
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { chromium } from "playwright-core";

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

const port = await freePort();
const server = spawn(bin, ["--listen", `127.0.0.1:${port}`, "--serve-examples", "--log", "warn"], {
  stdio: ["ignore", "inherit", "inherit"],
});
server.on("error", (e) => {
  console.error(`cannot start ${bin}: ${e.message}`);
  console.log("browser e2e: 0 passed, 1 failed");
  process.exit(1);
});
const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  ],
});
let failed = false;
const step = (what) => console.log(`  ${what}`);
try {
  await waitFor(`http://127.0.0.1:${port}/healthz`, 15000);
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
  console.log("browser e2e: 1 passed, 0 failed");
} catch (e) {
  failed = true;
  console.error("browser e2e failed:", e);
  console.log("browser e2e: 0 passed, 1 failed");
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
