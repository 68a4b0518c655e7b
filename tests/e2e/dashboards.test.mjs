// The dashboards in headless Chromium against the real binary: sign in as each role, watch a
// signed webhook change cards, charts, figures and the event log within a second without a
// reload, see that what the script adds from the page's templates is built like what the server
// renders after a reload, and ride out a resync and a server restart. Run: node --test tests/e2e/
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { ADMIN, browserTests, liveIs, SCREENSHOTS, serverAndBrowser, shapeOf, signIn, slotTexts } from "./lib.mjs";

const env = await browserTests("dashboards");
const { skip } = env;

const FREEZER = { id: "1988618061618400001", eui: "24e124707e060001", name: "Freezer A" };
const HOSTILE = {
  id: "1988618061618400002",
  eui: "24e124707e060002",
  name: "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>",
};
const MANAGER = { email: "manager@e2e.test", password: "manager password" };
const EMPLOYEE = { email: "employee@e2e.test", password: "employee password" };
const SECOND = 1000;

const pages = {};
/** Shapes of items the script built live, to compare with the server's after a reload. */
const live = {};
let readingNo = 0;

function reading(device, values) {
  readingNo += 1;
  return rig.server.postReading({ event: `e2e-${readingNo}`, ...device, ...values });
}

const row = (id) => `#device-table tr[data-device="${id}"]`;
const card = (id) => `.device-card[data-device="${id}"]`;
const place = (id) => `#unassigned-list li[data-device="${id}"]`;
const logLine = (id) => `#event-log li[data-id="${id}"]`;

/** Slot texts that do not depend on when they are read ("just now", "5 s ago"). */
async function steadyTexts(page, selector) {
  const { updated, at, ...rest } = await slotTexts(page, selector);
  return rest;
}

/** Runs `post`, then waits until `check` holds in the page; returns how long it took. */
async function timed(page, post, check, arg) {
  const started = Date.now();
  await post();
  await page.waitForFunction(check, arg, { timeout: 5 * SECOND });
  return Date.now() - started;
}

async function shoot(page, name, phone = false) {
  const size = page.viewportSize();
  if (phone) await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0)); // a sticky header stays on top
  await page.waitForTimeout(300); // charts redraw on resize
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  if (phone) await page.setViewportSize(size);
}

async function newPage() {
  const context = await rig.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  // A marker that only survives if the page is never reloaded.
  await page.addInitScript(() => {
    window.addEventListener("DOMContentLoaded", () => {
      window.__loads = (Number(sessionStorage.getItem("loads")) || 0) + 1;
      sessionStorage.setItem("loads", String(window.__loads));
    });
  });
  return page;
}

const loads = (page) => page.evaluate(() => window.__loads);

const rig = serverAndBrowser(env, { setUp: () => mkdirSync(SCREENSHOTS, { recursive: true }) });

test("admin: a new device shows up live: figures, table, devices to place, event log, toast", { skip, timeout: 60 * SECOND }, async (t) => {
  const page = (pages.admin = await newPage());
  await page.goto(`${rig.server.base}/login`);
  await shoot(page, "login");
  await signIn(page, rig.server.base, ADMIN, "/admin");
  await liveIs(page, "Live");
  const before = await loads(page);

  const took = await timed(
    page,
    () => reading(FREEZER, { t1: -18.4, t2: -17.9, battery: 93 }),
    (id) => document.querySelector('[data-stat="devices"]').textContent === "1"
      && document.querySelector(`#device-table tr[data-device="${id}"] [data-slot="temperature"]`)?.textContent === "-18.4 °C",
    FREEZER.id,
  );
  assert.ok(took < SECOND, `the page changed ${took} ms after the webhook`);
  t.diagnostic(`admin page updated ${took} ms after the webhook was posted`);
  assert.equal(await page.textContent('[data-stat="online"]'), "1");
  assert.equal(await page.textContent('[data-stat="readings"]'), "1");
  assert.match(await page.textContent("#unassigned-list"), /Freezer A/);
  assert.match(await page.textContent("#event-log li:first-child"), /Freezer A/);
  assert.match(await page.textContent("#toasts"), /New device/);
  assert.equal(await loads(page), before, "no reload");
  const logId = await page.getAttribute("#event-log li:first-child", "data-id");
  live.admin = {
    row: await shapeOf(page, row(FREEZER.id)),
    rowTexts: await steadyTexts(page, row(FREEZER.id)),
    place: await shapeOf(page, place(FREEZER.id)),
    logId,
    log: await shapeOf(page, logLine(logId)),
    logTexts: await steadyTexts(page, logLine(logId)),
  };
  assert.deepEqual(live.admin.rowTexts, {
    name: "Freezer A", model: "TS302", site: "Unassigned", status: "Online",
    temperature: "-18.4 °C", temperature2: "-17.9 °C", humidity: "–", battery: "93 %",
  });
});

test("admin: a hostile device name is shown as text, live and after a reload", { skip, timeout: 60 * SECOND }, async () => {
  const page = pages.admin;
  await timed(
    page,
    () => reading(HOSTILE, { t1: 5, t2: 6 }),
    (id) => document.querySelector(`#device-table tr[data-device="${id}"] [data-slot="temperature"]`)?.textContent === "5.0 °C",
    HOSTILE.id,
  );
  for (const sel of [row(HOSTILE.id), place(HOSTILE.id), "#event-log li:first-child"]) {
    assert.equal(await page.textContent(`${sel} [data-slot="name"]`), HOSTILE.name, sel);
  }
  assert.ok((await page.textContent("#toasts")).includes(HOSTILE.name), "the toast names it as text");
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator("img, main script:not([type='application/json'])").count(), 0);
  const hostile = { row: await shapeOf(page, row(HOSTILE.id)), place: await shapeOf(page, place(HOSTILE.id)) };

  await page.reload();
  assert.equal(await page.textContent(`${row(HOSTILE.id)} [data-slot="name"]`), HOSTILE.name);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // What the script cloned and filled is built like what the server renders.
  assert.deepEqual(await shapeOf(page, row(FREEZER.id)), live.admin.row, "device row");
  assert.deepEqual(await steadyTexts(page, row(FREEZER.id)), live.admin.rowTexts, "device row texts");
  assert.deepEqual(await shapeOf(page, place(FREEZER.id)), live.admin.place, "device to place");
  assert.deepEqual(await shapeOf(page, logLine(live.admin.logId)), live.admin.log, "event log line");
  assert.deepEqual(await steadyTexts(page, logLine(live.admin.logId)), live.admin.logTexts, "event log texts");
  assert.deepEqual(await shapeOf(page, row(HOSTILE.id)), hostile.row, "hostile device row");
  assert.deepEqual(await shapeOf(page, place(HOSTILE.id)), hostile.place, "hostile device to place");
  await liveIs(page, "Live");
});

test("admin: place the device and create a manager and an employee through the forms", { skip, timeout: 60 * SECOND }, async () => {
  const page = pages.admin;
  const item = page.locator(`#unassigned-list li[data-device="${FREEZER.id}"]`);
  await item.locator("input[name=new_site]").fill("Cold store North");
  await Promise.all([page.waitForURL("**/admin#unassigned"), item.locator("button").click()]);
  assert.match(await page.textContent(".alert"), /Freezer A is now in Cold store North\./);

  for (const [user, role] of [[MANAGER, "manager"], [EMPLOYEE, "employee"]]) {
    await page.click("details.create > summary");
    const form = page.locator("form.create-form");
    await form.locator("input[name=email]").fill(user.email);
    await form.locator("input[name=password]").fill(user.password);
    await form.locator("select[name=role]").selectOption(role);
    await form.locator("label.check", { hasText: "Cold store North" }).locator("input").check();
    await Promise.all([page.waitForURL("**/admin#users"), form.locator("button[type=submit]").click()]);
    assert.match(await page.textContent(".alert"), new RegExp(`Created ${user.email}`));
  }
  await liveIs(page, "Live");
  await shoot(page, "admin");
  await shoot(page, "admin-phone", true);
});

test("manager and employee: card, chart and figures follow a reading within a second", { skip, timeout: 60 * SECOND }, async (t) => {
  const manager = (pages.manager = await newPage());
  const employee = (pages.employee = await newPage());
  await signIn(manager, rig.server.base, MANAGER, "/manager");
  await signIn(employee, rig.server.base, EMPLOYEE, "/employee");
  await Promise.all([liveIs(manager, "Live"), liveIs(employee, "Live")]);
  pages.loaded = { manager: await loads(manager), employee: await loads(employee) };
  assert.doesNotMatch(await employee.content(), /__xss|onerror/, "the unplaced device is not shown");
  const points = (page) => page.getAttribute(`[data-chart="${FREEZER.id}"]`, "data-points").then(Number);
  const [pointsBefore, readingsBefore] = [await points(manager), Number(await manager.textContent('[data-stat="readings"]'))];

  const started = Date.now();
  await reading(FREEZER, { t1: -17.3, t2: -16.2, humidity: 55, battery: 91 });
  await manager.waitForFunction(([id]) => {
    const c = document.querySelector(`.device-card[data-device="${id}"]`);
    return c.querySelector('[data-slot="temperature"]').textContent === "-17.3 °C"
      && c.querySelector('[data-slot="temperature2"]').textContent === "-16.2 °C"
      && c.querySelector('[data-slot="humidity"]').textContent === "55 %";
  }, [FREEZER.id], { timeout: 5 * SECOND });
  await employee.waitForFunction((id) => document.querySelector(`.device-card[data-device="${id}"] [data-slot="temperature"]`).textContent === "-17.3 °C", FREEZER.id);
  const took = Date.now() - started;
  assert.ok(took < SECOND, `cards changed ${took} ms after the webhook`);
  t.diagnostic(`manager and employee cards updated ${took} ms after the webhook was posted`);
  assert.equal(await points(manager), pointsBefore + 1, "the chart gained the reading");
  assert.equal(Number(await manager.textContent('[data-stat="readings"]')), readingsBefore + 1);
  assert.equal(await loads(manager), pages.loaded.manager, "no reload");
  assert.equal(await loads(employee), pages.loaded.employee, "no reload");

  // The device reports an alarm: a toast, the open-alarms panel, the card's alarm line.
  const tookAlarm = await timed(
    manager,
    () => reading(FREEZER, { t1: -9.8, t2: -16.0, alarm: "threshold_alarm" }),
    () => document.querySelector("#alarm-list li") !== null
      && /Alarm/.test(document.getElementById("toasts").textContent),
  );
  assert.ok(tookAlarm < SECOND, `the alarm showed ${tookAlarm} ms after the webhook`);
  t.diagnostic(`alarm toast ${tookAlarm} ms after the webhook was posted`);
  assert.match(await manager.textContent(`.device-card[data-device="${FREEZER.id}"] .alarm-line`), /threshold alarm/);
  live.alarm = await shapeOf(manager, "#alarm-list li:first-child");
  live.alarmTexts = await steadyTexts(manager, "#alarm-list li:first-child");
  const { started: startedAt, raised: raisedAt, ...alarmTexts } = live.alarmTexts;
  assert.ok(startedAt && raisedAt, "when it started and was raised");
  assert.deepEqual(alarmTexts, {
    name: "Freezer A", kind: "Device alarm", state: "Active", what: "Probe 1 temperature (threshold alarm)",
    value: "", peak: "", range: "", ended: "", "ack-by": "", "ack-at": "", comment: "",
    counter: "0 / 1000 characters", error: "",
  });
  await shoot(manager, "manager");
  await shoot(manager, "manager-phone", true);
  await shoot(employee, "employee");
  await shoot(employee, "employee-phone", true);
});

test("manager: a device placed while the page is open gets a card from the template, built like the server's, its name as text", { skip, timeout: 60 * SECOND }, async () => {
  const admin = pages.admin;
  await admin.goto(`${rig.server.base}/admin`);
  const item = admin.locator(place(HOSTILE.id));
  await item.locator("select[name=site]").selectOption({ label: "Cold store North" });
  await Promise.all([admin.waitForURL("**/admin#unassigned"), item.locator("button").click()]);
  assert.match(await admin.textContent(".alert"), /is now in Cold store North\./);

  const manager = pages.manager;
  await liveIs(manager, "Live");
  const before = await loads(manager);
  const devices = Number(await manager.textContent('[data-stat="devices"]'));
  // Values whose rounding differs between toFixed and the server's (ties go to even there).
  await reading(HOSTILE, { t1: 3.25, t2: -0.25, humidity: 54.5, battery: 15 });
  await manager.waitForFunction((sel) => document.querySelector(`${sel} [data-slot="temperature"]`)?.textContent === "3.2 °C", card(HOSTILE.id), { timeout: 5 * SECOND });
  await pages.employee.waitForSelector(card(HOSTILE.id), { timeout: 5 * SECOND });
  for (const page of [manager, pages.employee]) {
    assert.equal(await page.textContent(`${card(HOSTILE.id)} [data-slot="name"]`), HOSTILE.name);
    assert.equal(await page.locator("img").count(), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
  }
  assert.equal(await manager.textContent(`${row(HOSTILE.id)} [data-slot="name"]`), HOSTILE.name, "and a table row");
  assert.equal(Number(await manager.textContent('[data-stat="devices"]')), devices + 1);
  assert.equal(await loads(manager), before, "no reload");
  const { site, ...texts } = await steadyTexts(manager, card(HOSTILE.id));
  assert.equal(site, "Just placed");
  assert.deepEqual(texts, {
    name: HOSTILE.name, model: "", status: "Online",
    temperature: "3.2 °C", temperature2: "-0.2 °C", humidity: "54 %", battery: "15 %", alarms: "",
  });
  const shape = await shapeOf(manager, card(HOSTILE.id));
  await shoot(manager, "manager-live-card-phone", true);

  await manager.reload();
  await liveIs(manager, "Live");
  assert.deepEqual(await shapeOf(manager, card(HOSTILE.id)), shape, "card");
  const { site: placed, ...after } = await steadyTexts(manager, card(HOSTILE.id));
  assert.equal(placed, "Cold store North");
  assert.deepEqual(after, { ...texts, model: "TS302" });
  assert.deepEqual(await shapeOf(manager, "#alarm-list li:first-child"), live.alarm, "alarm line");
  assert.deepEqual(await steadyTexts(manager, "#alarm-list li:first-child"), live.alarmTexts, "alarm texts");
  assert.equal(await manager.evaluate(() => window.__xss), undefined);
  await shoot(manager, "manager-reloaded-phone", true);
});

test("device page: history chart, readings table and export", { skip, timeout: 60 * SECOND }, async (t) => {
  const page = pages.manager;
  await Promise.all([page.waitForURL(`**/devices/${FREEZER.id}`), page.click(`.device-card[data-device="${FREEZER.id}"] .card-title a`)]);
  await liveIs(page, "Live");
  const rows = () => page.locator("#readings-table tbody tr").count();
  const before = await rows();
  const took = await timed(
    page,
    () => reading(FREEZER, { t1: -18.0, t2: -17.0 }),
    (n) => document.querySelectorAll("#readings-table tbody tr").length === n + 1
      && document.querySelector('[data-slot="temperature"]').textContent === "-18.0 °C",
    before,
  );
  assert.ok(took < SECOND, `the device page changed ${took} ms after the webhook`);
  t.diagnostic(`device page updated ${took} ms after the webhook was posted`);
  assert.ok(Number(await page.getAttribute(".chart-large", "data-points")) >= 2);
  const first = "#readings-table tbody tr:first-child";
  const [shape, texts] = [await shapeOf(page, first), await steadyTexts(page, first)];
  assert.deepEqual(texts, {
    historical: "history", temperature: "-18.0 °C", temperature2: "-17.0 °C", humidity: "–", battery: "90 %", alarms: "",
  });
  await page.reload();
  await liveIs(page, "Live");
  assert.deepEqual(await shapeOf(page, first), shape, "reading row");
  assert.deepEqual(await steadyTexts(page, first), texts, "reading row texts");
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), `/devices/${FREEZER.id}/export.csv`);
  assert.equal(csv.trim().split("\n").length, 1 + 4, "header and four readings");
  await shoot(page, "device");
  await shoot(page, "device-phone", true);
  await page.goBack();
});

test("resync: the page loads its data again in place and goes on live", { skip, timeout: 60 * SECOND }, async () => {
  const page = pages.manager;
  await liveIs(page, "Live");
  const before = await loads(page);
  // Away (offline; a restart ends the stream) until a reading is stored, as in the next test.
  await page.context().setOffline(true);
  await rig.server.stop();
  await liveIs(page, "Reconnecting…", 10 * SECOND);
  await rig.server.start();
  await reading(FREEZER, { t1: -12.25, t2: -11.5 });

  // Back online, the stream answers `resync` instead of the replay (the server sends it when the
  // replay would be too long), then only `connected` until the route is gone: the page can only
  // learn of the missed reading by loading its data again.
  const stream = (url) => url.pathname === "/api/realtime";
  let answered = 0;
  await page.route(stream, (route) => {
    answered += 1;
    const frame = (msg) => `data: ${JSON.stringify({ timestamp: Date.now(), ...msg })}\n\n`;
    const body = `retry: 300\n\n${frame({ type: "connected", message: "Real-time connection established" })}`
      + (answered === 1 ? frame({ type: "resync" }) : "");
    return route.fulfill({ status: 200, headers: { "content-type": "text/event-stream", "cache-control": "no-cache" }, body });
  });
  await page.context().setOffline(false);
  const t1 = `${card(FREEZER.id)} [data-slot="temperature"]`;
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === "-12.2 °C", t1, { timeout: 10 * SECOND });
  assert.ok(answered >= 1);
  assert.equal(await loads(page), before, "the data, not the page, was loaded again");
  assert.ok(Number(await page.getAttribute(`[data-chart="${FREEZER.id}"]`, "data-points")) > 0, "charts redrawn");

  await page.unroute(stream);
  await liveIs(page, "Live", 10 * SECOND);
  await timed(page, () => reading(FREEZER, { t1: -13, t2: -12 }), (sel) => document.querySelector(sel).textContent === "-13.0 °C", t1);
  assert.equal(await loads(page), before, "no reload");
  await liveIs(pages.employee, "Live", 30 * SECOND); // it lost its stream to the restart too
});

test("restart: the indicator goes to Reconnecting… and back, and the missed reading shows", { skip, timeout: 90 * SECOND }, async (t) => {
  const page = pages.employee;
  await liveIs(page, "Live");
  await rig.server.stop();
  await liveIs(page, "Reconnecting…", 10 * SECOND);
  await page.waitForTimeout(500); // the pulse is gone; show the state
  await shoot(page, "reconnecting");

  // Keep this browser away until the reading is stored, so it can only learn of it by
  // catching up (Last-Event-ID) when it reconnects.
  const down = Date.now();
  await page.context().setOffline(true);
  await rig.server.start();
  await reading(FREEZER, { t1: -15.5, t2: -14.5 });
  await page.waitForTimeout(500);
  const t1 = `.device-card[data-device="${FREEZER.id}"] [data-slot="temperature"]`;
  assert.notEqual(await page.textContent(t1), "-15.5 °C", "missed while away");
  await page.context().setOffline(false);
  await liveIs(page, "Live", 30 * SECOND);
  await page.waitForFunction((id) => document.querySelector(`.device-card[data-device="${id}"] [data-slot="temperature"]`).textContent === "-15.5 °C", FREEZER.id, { timeout: 5 * SECOND });
  assert.equal(await loads(page), pages.loaded.employee, "no reload");
  t.diagnostic(`live again with the missed reading ${Date.now() - down} ms after the restart began`);
});
