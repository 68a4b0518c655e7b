// One stream per browser, not per tab (static/js/tabs.js), in headless Chromium against the real
// binary: three tabs of one user hold one stream on the server; closing the tab that holds it
// passes it to another and no tab misses an event; a tab opened later gets what it missed; a
// device page among them shows only its device; a browser without Web Locks has a stream per tab.
// Run: node --test tests/e2e/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ADMIN, browserTests, liveIs, serverAndBrowser, signIn } from "./lib.mjs";

const env = await browserTests("tabs");
const { skip } = env;
const SECOND = 1000;
const COLD = { id: "1988618061618400501", eui: "24e124707e0b0501", name: "Cold room T" };
const DOOR = { id: "1988618061618400502", eui: "24e124707e0b0502", name: "Door T" };

let context;
let readingNo = 0;
const tabs = [];

function reading(device, t1) {
  readingNo += 1;
  return rig.server.postReading({ event: `tabs-${readingNo}`, ...device, t1, t2: 1.0 });
}

async function openTab(path = "/admin") {
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  await page.goto(`${rig.server.base}${path}`);
  await liveIs(page, "Live");
  tabs.push(page);
  return page;
}

const role = (page) => page.evaluate(() => document.body.dataset.stream);
const logIds = (page) =>
  page.$$eval("#event-log li[data-id]", (items) => items.map((li) => Number(li.dataset.id)).sort((a, b) => a - b));

/** Streams the server holds open, as `/api/realtime/stats` counts them. */
async function streams(page) {
  return page.evaluate(async () => (await (await fetch("/api/realtime/stats")).json()).clients);
}

async function streamsBecome(page, n) {
  const deadline = Date.now() + 5 * SECOND;
  let now;
  while ((now = await streams(page)) !== n && Date.now() < deadline) await page.waitForTimeout(100);
  assert.equal(now, n, "streams open on the server");
}

async function leaderOf(pages) {
  const roles = await Promise.all(pages.map(role));
  assert.equal(roles.filter((r) => r === "leader").length, 1, `one leader among ${roles}`);
  assert.ok(roles.every((r) => r === "leader" || r === "follower"), String(roles));
  return pages[roles.indexOf("leader")];
}

const rig = serverAndBrowser(env, {
  setUp: async ({ server, browser }) => {
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const first = await context.newPage();
    await signIn(first, server.base, ADMIN, "/admin");
    await first.close();
  },
});

test("three tabs of one user hold one stream, and each shows every event", { skip, timeout: 60 * SECOND }, async () => {
  await reading(COLD, 2.0);
  for (let i = 0; i < 3; i++) await openTab();
  await leaderOf(tabs);
  await streamsBecome(tabs[0], 1);

  await reading(COLD, 2.5);
  for (const page of tabs) {
    await page.waitForFunction(
      (id) => document.querySelector(`#device-table tr[data-device="${id}"] [data-slot="temperature"]`)
        ?.textContent === "2.5 °C",
      COLD.id,
      { timeout: 5 * SECOND },
    );
  }
  const [a, b, c] = await Promise.all(tabs.map(logIds));
  assert.deepEqual(b, a);
  assert.deepEqual(c, a);
});

test("closing the tab that holds the stream passes it on, and no tab misses an event", { skip, timeout: 60 * SECOND }, async () => {
  const leader = await leaderOf(tabs);
  const rest = tabs.filter((p) => p !== leader);
  const before = await logIds(rest[0]);
  // The next stream opens late, so these events are stored while no tab has a stream: the tab
  // that takes over must ask for them with the last id it has.
  const late = (route) => setTimeout(() => route.continue(), 1500);
  await context.route("**/api/realtime?*", late);
  await leader.close();
  tabs.splice(tabs.indexOf(leader), 1);
  for (let i = 0; i < 5; i++) await reading(COLD, 3 + i / 10);
  for (const page of rest) {
    await page.waitForFunction(
      (n) => document.querySelectorAll("#event-log li[data-id]").length >= n,
      before.length + 5,
      { timeout: 10 * SECOND },
    );
  }
  const [a, b] = await Promise.all(rest.map(logIds));
  assert.deepEqual(b, a, "both tabs show the same events");
  const added = a.filter((id) => !before.includes(id));
  assert.equal(added.length, 5, `five new events: ${added}`);
  await leaderOf(rest);
  await streamsBecome(rest[0], 1);
  for (const page of rest) await liveIs(page, "Live");
  await context.unroute("**/api/realtime?*", late);
});

test("a tab opened later gets what it missed; a device page shows only its device", { skip, timeout: 60 * SECOND }, async () => {
  await reading(DOOR, 5.0);
  const device = await openTab(`/devices/${COLD.id}`);
  assert.equal(await role(device), "follower");
  await streamsBecome(device, 1);
  const rows = () => device.$$eval("#readings-table tbody tr", (trs) => trs.length);
  const rowsBefore = await rows();

  await reading(DOOR, 5.5);
  await reading(COLD, 4.2);
  await device.waitForFunction(
    () => document.querySelector('.stat-value[data-slot="temperature"]')?.textContent === "4.2 °C",
    null,
    { timeout: 5 * SECOND },
  );
  assert.equal(await rows(), rowsBefore + 1, "the other device's reading is not listed");
  // The dashboards got the door's reading too.
  for (const page of tabs.filter((p) => p !== device)) {
    await page.waitForFunction(
      (id) => document.querySelector(`#device-table tr[data-device="${id}"] [data-slot="temperature"]`)
        ?.textContent === "5.5 °C",
      DOOR.id,
      { timeout: 5 * SECOND },
    );
  }
});

test("a tab whose page is older than the shared stream gets the gap from the leader", { skip, timeout: 60 * SECOND }, async () => {
  const position = (page) => page.evaluate(() => Number(document.body.dataset.lastEventId));
  const newest = await position(tabs[0]);
  // As if two events were stored after the page was rendered and before the tab joined.
  const stale = async (route) => {
    const r = await route.fetch();
    const html = (await r.text()).replace(/data-last-event-id="\d+"/, `data-last-event-id="${newest - 2}"`);
    await route.fulfill({ response: r, body: html });
  };
  await context.route("**/admin", stale);
  const page = await openTab("/admin");
  await context.unroute("**/admin", stale);
  assert.equal(await role(page), "follower");
  await page.waitForFunction((n) => Number(document.body.dataset.lastEventId) === n, newest, { timeout: 5 * SECOND });
  // Keepalives (no id of their own) do not move it: only the leader's answer did.
  await page.waitForTimeout(6 * SECOND);
  assert.equal(await position(page), newest);
  await streamsBecome(page, 1);
});

test("without Web Locks a tab opens a stream of its own", { skip, timeout: 60 * SECOND }, async () => {
  const page = await context.newPage();
  await page.addInitScript(() => Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined }));
  await page.goto(`${rig.server.base}/admin`);
  await liveIs(page, "Live");
  assert.equal(await role(page), "own");
  await streamsBecome(page, 2);
  await reading(COLD, 6.1);
  await page.waitForFunction(
    (id) => document.querySelector(`#device-table tr[data-device="${id}"] [data-slot="temperature"]`)
      ?.textContent === "6.1 °C",
    COLD.id,
    { timeout: 5 * SECOND },
  );
  await page.close();
  await streamsBecome(tabs[0], 1);
});
