// Web Push opt-in in headless Chromium against the real binary: the service worker at
// /static/sw.js registers and activates; the "Notify me in this browser" button shows where the
// browser supports push; with notifications blocked it says so; with them allowed it asks the
// browser's push service for a subscription. Headless Chromium stops there: even with
// notifications granted it refuses the subscription ("Registration failed - permission denied";
// it has no push service to register with), so the test checks that the page says why in words
// and that the browser stored no subscription. Encryption, VAPID and
// delivery are tested against a push service the Rust tests play (tests/it/push.rs).
// Run: node --test tests/e2e/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ADMIN, browserTests, serverAndBrowser, signIn } from "./lib.mjs";

const env = await browserTests("push");
const { skip } = env;
const SECOND = 1000;


const rig = serverAndBrowser(env);

async function adminPage(permissions) {
  const context = await rig.browser.newContext({ viewport: { width: 1280, height: 900 } });
  if (permissions) await context.grantPermissions(permissions, { origin: rig.server.base });
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  await signIn(page, rig.server.base, ADMIN, "/admin");
  return { context, page };
}

test("the service worker registers and activates; the opt-in button shows", { skip, timeout: 30 * SECOND }, async () => {
  const { context, page } = await adminPage();
  assert.equal(await page.isVisible("#push-optin"), true, "shown: headless Chromium has service workers and PushManager");
  const sw = await page.evaluate(async () => {
    const r = await navigator.serviceWorker.register("/static/sw.js");
    const worker = r.installing || r.waiting || r.active;
    if (worker.state !== "activated") {
      await new Promise((ok) => worker.addEventListener("statechange", () => worker.state === "activated" && ok()));
    }
    return { scope: r.scope, state: r.active.state, script: r.active.scriptURL };
  });
  assert.equal(sw.scope, `${rig.server.base}/static/`);
  assert.equal(sw.state, "activated");
  assert.equal(sw.script, `${rig.server.base}/static/sw.js`);
  await context.close();
});

test("notifications blocked: the page says so and subscribes nothing", { skip, timeout: 30 * SECOND }, async () => {
  const { context, page } = await adminPage();
  // Headless Chromium answers a permission prompt with "denied" unless the test grants it.
  await page.click("#push-optin");
  await page.waitForFunction(() => document.getElementById("push-status").textContent !== "");
  assert.equal(
    await page.textContent("#push-status"),
    "Notifications are blocked for this site in the browser's settings.",
  );
  assert.equal(await page.isEnabled("#push-optin"), true, "the button can be pressed again");
  await context.close();
});

test("notifications allowed: the browser asks its push service; where there is none, the page says why", { skip, timeout: 30 * SECOND }, async () => {
  const { context, page } = await adminPage(["notifications"]);
  await page.click("#push-optin");
  await page.waitForFunction(() => document.getElementById("push-status").textContent !== "", null, { timeout: 20 * SECOND });
  const said = await page.textContent("#push-status");
  if (said === "This browser will show alarm notifications.") {
    // A Chromium with a reachable push service: the subscription is the server's now.
    const stored = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration("/static/");
      return (await r.pushManager.getSubscription())?.endpoint ?? null;
    });
    assert.ok(stored?.startsWith("https://"), `an https endpoint: ${stored}`);
  } else {
    assert.match(said, /^Could not turn on notifications: \S/, "the reason, in words");
    const stored = await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration("/static/");
      return r ? await r.pushManager.getSubscription() : null;
    });
    assert.equal(stored, null, "no subscription in the browser");
    console.log(`ℹ headless Chromium stops at the push service: ${said}`);
  }
  await context.close();
});
