// Alarms in headless Chromium against the real binary: a manager and an employee of one site and
// the manager of another are signed in; a rule is PUT on a device of the first site; a signed
// webhook reading out of range raises an alarm that shows on the first site's pages within 2 s
// (toast, open-alarms panel, tab-title count) and never on the other site's; the employee
// acknowledges it with the corrective action, which the manager sees within 2 s and after a
// reload; a reading back in range clears it and it leaves the open list. Then: a cleared alarm
// nobody acknowledged stays, marked cleared; the forms without JavaScript; the device page's rules
// (table, form, errors in words, the band on the chart) and alarm history; phone widths.
// Run: node --test tests/e2e/
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import {
  ADMIN, api, browserTests, liveIs, SCREENSHOTS, serverAndBrowser, shapeOf, signIn, slotTexts,
} from "./lib.mjs";

const env = await browserTests("alarms");
const { skip } = env;

const SECOND = 1000;
/** The longest an alarm change may take to show on another user's page. */
const LIVE_MS = 2 * SECOND;
const NORTH_DEVICE = { id: "1988618061618400101", eui: "24e124707e060101", name: "Freezer North" };
const SOUTH_DEVICE = { id: "1988618061618400102", eui: "24e124707e060102", name: "Freezer South" };
const NORTH_MANAGER = { email: "north.manager@e2e.test", password: "north manager pw" };
const NORTH_EMPLOYEE = { email: "north.employee@e2e.test", password: "north employee pw" };
const SOUTH_MANAGER = { email: "south.manager@e2e.test", password: "south manager pw" };
const COMMENT = "Moved the stock to freezer B and closed the door <b>firmly</b>";

const pages = {};
const contexts = [];
let readingNo = 0;
/** The first alarm's id, and the live-built item's shape and texts (compared after a reload). */
const first = {};

function reading(device, t1, extra = {}) {
  readingNo += 1;
  return rig.server.postReading({ event: `alarm-e2e-${readingNo}`, ...device, t1, t2: -20, ...extra });
}

const item = (id) => `#alarm-list > li[data-alarm="${id}"]`;
const openItems = (page) => page.locator("#alarm-list > li[data-alarm]").count();
const title = (page) => page.evaluate(() => document.title);

/** Slot texts of an item that do not depend on the form's state. */
async function itemTexts(page, selector) {
  const { counter, error, ...rest } = await slotTexts(page, selector);
  return rest;
}

async function newPage(options = {}) {
  const context = await rig.browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  contexts.push(context);
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  return page;
}

/** Runs `post`, then waits until `check` holds in every page; how long that took. */
async function timed(list, post, check, arg) {
  const started = Date.now();
  await post();
  await Promise.all(list.map((p) => p.waitForFunction(check, arg, { timeout: 5 * SECOND })));
  return Date.now() - started;
}

async function shoot(page, name, phone = false) {
  const size = page.viewportSize();
  if (phone) await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(300); // charts redraw on resize
  if (phone) {
    // Usable at 390 px: nothing is wider than the screen.
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= 390, `${name}: the page is ${wide} px wide at 390 px`);
  }
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
  if (phone) await page.setViewportSize(size);
}

const rig = serverAndBrowser(env, {
  setUp: () => mkdirSync(SCREENSHOTS, { recursive: true }),
  tearDown: async () => {
    for (const c of contexts) await c.close().catch(() => {});
  },
});

test("setup: two sites, a device in each, a manager and an employee of North, a manager of South", { skip, timeout: 60 * SECOND }, async () => {
  const admin = (pages.admin = await newPage());
  await signIn(admin, rig.server.base, ADMIN, "/admin");
  assert.equal(await admin.getAttribute('.subnav a[href="/admin/audit"]', "href"), "/admin/audit", "the audit trail is linked");
  assert.match(await admin.textContent("#alarms"), /No open alarms/);
  await reading(NORTH_DEVICE, -18.2);
  await reading(SOUTH_DEVICE, -19.1);
  for (const [device, site] of [[NORTH_DEVICE, "North"], [SOUTH_DEVICE, "South"]]) {
    await admin.goto(`${rig.server.base}/admin`);
    const li = admin.locator(`#unassigned-list li[data-device="${device.id}"]`);
    await li.locator("input[name=new_site]").fill(site);
    await Promise.all([admin.waitForURL("**/admin#unassigned"), li.locator("button").click()]);
    assert.match(await admin.textContent(".alert"), new RegExp(`${device.name} is now in ${site}`));
  }
  for (const [user, role, site] of [
    [NORTH_MANAGER, "manager", "North"], [NORTH_EMPLOYEE, "employee", "North"], [SOUTH_MANAGER, "manager", "South"],
  ]) {
    await admin.click("details.create > summary");
    const form = admin.locator("form.create-form");
    await form.locator("input[name=email]").fill(user.email);
    await form.locator("input[name=password]").fill(user.password);
    await form.locator("select[name=role]").selectOption(role);
    await form.locator("label.check", { hasText: site }).locator("input").check();
    await Promise.all([admin.waitForURL("**/admin#users"), form.locator("button[type=submit]").click()]);
    assert.match(await admin.textContent(".alert"), new RegExp(`Created ${user.email}`));
  }
  await admin.goto(`${rig.server.base}/admin`);
  await liveIs(admin, "Live");

  pages.manager = await newPage();
  pages.employee = await newPage();
  pages.other = await newPage();
  await signIn(pages.manager, rig.server.base, NORTH_MANAGER, "/manager");
  await signIn(pages.employee, rig.server.base, NORTH_EMPLOYEE, "/employee");
  await signIn(pages.other, rig.server.base, SOUTH_MANAGER, "/manager");
  await Promise.all([pages.manager, pages.employee, pages.other].map((p) => liveIs(p, "Live")));
  for (const p of [pages.manager, pages.employee, pages.other]) {
    assert.equal(await openItems(p), 0);
    assert.doesNotMatch(await title(p), /^\(\d+\)/);
  }
});

test("an alarm shows on the site's pages within 2 s, with a toast and the count in the title, and not on another site's", { skip, timeout: 60 * SECOND }, async (t) => {
  const { manager, employee, other, admin } = pages;
  // The rule, PUT as the contract says (the device page's form does the same, tested below).
  const put = await api(manager, "PUT", `/api/devices/${NORTH_DEVICE.id}/rules`, {
    rules: [{ quantity: "temperature", probe: 1, max: -15, delaySecs: 0 }],
  });
  assert.equal(put.status, 200, JSON.stringify(put.json));
  assert.deepEqual(put.json.rules, [{ quantity: "temperature", probe: 1, min: null, max: -15, delaySecs: 0 }]);
  const refused = await api(employee, "PUT", `/api/devices/${NORTH_DEVICE.id}/rules`, { rules: [] });
  assert.equal(refused.status, 403, "employees may not change rules");

  const took = await timed(
    [manager, employee, admin],
    () => reading(NORTH_DEVICE, -10),
    () => document.querySelector("#alarm-list > li[data-alarm]") !== null,
  );
  t.diagnostic(`alarm on the manager's, the employee's and the admin's page ${took} ms after the webhook`);
  assert.ok(took < LIVE_MS, `the alarm showed ${took} ms after the webhook (at most ${LIVE_MS})`);
  first.id = await manager.getAttribute("#alarm-list > li[data-alarm]", "data-alarm");
  for (const page of [manager, employee]) {
    const texts = await itemTexts(page, item(first.id));
    assert.equal(texts.name, NORTH_DEVICE.name);
    assert.equal(texts.kind, "Out of range");
    assert.equal(texts.what, "Probe 1 temperature");
    assert.equal(texts.value, "-10.0 °C");
    assert.equal(texts.range, "at most -15.0 °C");
    assert.equal(texts.state, "Active");
    assert.match(await page.textContent("#toasts"), /Alarm · Freezer North/);
    assert.match(await page.textContent("#toasts"), /Probe 1 temperature: -10\.0 °C \(allowed at most -15\.0 °C\)/);
    assert.match(await title(page), /^\(1\) /, "the count of unacknowledged alarms in the tab title");
    assert.equal(await page.getAttribute(`${item(first.id)} a[data-slot="name"]`, "href"), `/devices/${NORTH_DEVICE.id}`);
    assert.equal(await page.isVisible(`${item(first.id)} details.ack > summary`), true, "an Acknowledge button");
    assert.equal(await page.textContent('#alarms [data-count="alarms"]'), "1");
  }

  // The other site's page hears of a later reading of its own device, and never of the alarm.
  await timed(
    [other],
    () => reading(SOUTH_DEVICE, -19.5),
    (id) => document.querySelector(`.device-card[data-device="${id}"] [data-slot="temperature"]`)?.textContent === "-19.5 °C",
    SOUTH_DEVICE.id,
  );
  assert.equal(await openItems(other), 0, "no alarm of another site");
  assert.doesNotMatch(await other.textContent("#toasts"), /Freezer North/);
  assert.doesNotMatch(await title(other), /^\(\d+\)/);
  assert.doesNotMatch(await other.content(), /Freezer North/);
  const notSeen = await api(other, "POST", `/api/alarms/${first.id}/acknowledge`, { comment: "not mine" });
  assert.equal(notSeen.status, 404);
  await shoot(manager, "alarm-manager");
  await manager.click(`${item(first.id)} details.ack > summary`);
  await shoot(manager, "alarm-manager-phone", true);
  await manager.click(`${item(first.id)} details.ack > summary`); // closed again
});

test("the employee acknowledges with the corrective action; the manager sees who within 2 s, and after a reload", { skip, timeout: 60 * SECOND }, async (t) => {
  const { manager, employee } = pages;
  const li = employee.locator(item(first.id));
  await li.locator("details.ack > summary").click();
  const form = li.locator("form.ack-form");
  await employee.waitForFunction((sel) => document.activeElement === document.querySelector(`${sel} textarea`), item(first.id));
  // Blank (spaces only): the server refuses, the form says why in words.
  await form.locator("textarea").fill("   ");
  await form.locator("button[type=submit]").click();
  await employee.waitForFunction((sel) => !document.querySelector(`${sel} [data-slot="error"]`).hidden, item(first.id));
  assert.match(await form.locator('[data-slot="error"]').textContent(), /write the corrective action taken \(1–1000 characters\)/);
  await form.locator("textarea").fill(COMMENT);
  assert.equal(await form.locator('[data-slot="counter"]').textContent(), `${COMMENT.length} / 1000 characters`);
  await shoot(employee, "alarm-acknowledge-phone", true);

  const took = await timed(
    [manager],
    () => form.locator("button[type=submit]").click(),
    ([sel, by]) => document.querySelector(`${sel} [data-slot="ack-by"]`)?.textContent === by
      && !document.querySelector(`${sel} [data-wrap="ack"]`).hidden,
    [item(first.id), NORTH_EMPLOYEE.email],
  );
  t.diagnostic(`acknowledgement on the manager's page ${took} ms after the employee pressed Acknowledge`);
  assert.ok(took < LIVE_MS, `the manager saw it ${took} ms after (at most ${LIVE_MS})`);
  for (const page of [manager, employee]) {
    const texts = await itemTexts(page, item(first.id));
    assert.equal(texts["ack-by"], NORTH_EMPLOYEE.email);
    assert.equal(texts.comment, COMMENT, "the comment, as text");
    assert.equal(texts.state, "Active", "still out of range: it stays in the open list");
    assert.equal(await page.isVisible(`${item(first.id)} details.ack`), false, "no second acknowledgement");
    await page.waitForFunction(() => !/^\(\d+\)/.test(document.title));
  }
  assert.equal(await employee.locator(`${item(first.id)} b`).count(), 0, "no markup from the comment");
  first.shape = await shapeOf(manager, item(first.id));
  first.texts = await itemTexts(manager, item(first.id));

  // A stale form (acknowledged meanwhile): 409, in words.
  await manager.evaluate((sel) => {
    const d = document.querySelector(`${sel} details.ack`);
    d.hidden = false;
    d.open = true;
  }, item(first.id));
  await manager.fill(`${item(first.id)} textarea`, "me too");
  await manager.click(`${item(first.id)} form.ack-form button[type=submit]`);
  await manager.waitForFunction((sel) => !document.querySelector(`${sel} [data-slot="error"]`).hidden, item(first.id));
  assert.match(await manager.textContent(`${item(first.id)} [data-slot="error"]`), /someone already acknowledged this alarm/);

  await manager.reload();
  await liveIs(manager, "Live");
  assert.deepEqual(await itemTexts(manager, item(first.id)), first.texts, "acknowledged after a reload too");
  assert.deepEqual(await shapeOf(manager, item(first.id)), first.shape, "the live item is built like the server's");
  assert.doesNotMatch(await title(manager), /^\(\d+\)/);
});

test("back in range, an acknowledged alarm leaves the open list within 2 s; the title has no count", { skip, timeout: 60 * SECOND }, async (t) => {
  const { manager, employee, admin } = pages;
  const took = await timed(
    [manager, employee, admin],
    () => reading(NORTH_DEVICE, -18),
    (sel) => document.querySelector(sel) === null && !document.getElementById("alarm-empty").hidden,
    item(first.id),
  );
  t.diagnostic(`cleared alarm left the open lists ${took} ms after the webhook`);
  assert.ok(took < LIVE_MS, `it left ${took} ms after the webhook`);
  for (const page of [manager, employee]) {
    assert.doesNotMatch(await title(page), /^\(\d+\)/);
    assert.equal(await page.textContent('#alarms [data-count="alarms"]'), "0");
  }
});

test("a cleared alarm nobody acknowledged stays, marked cleared; acknowledged without JavaScript it goes", { skip, timeout: 60 * SECOND }, async (t) => {
  const { manager, employee } = pages;
  await timed([manager, employee], () => reading(NORTH_DEVICE, -9.5), () => document.querySelector("#alarm-list > li[data-alarm]") !== null);
  const id = await manager.getAttribute("#alarm-list > li[data-alarm]", "data-alarm");
  assert.notEqual(id, first.id, "a new alarm");
  await timed(
    [manager, employee],
    () => reading(NORTH_DEVICE, -18.5),
    (sel) => document.querySelector(`${sel} [data-slot="state"]`)?.textContent === "Cleared",
    item(id),
  );
  assert.equal(await manager.getAttribute(item(id), "data-active"), "false");
  assert.equal(await manager.isVisible(`${item(id)} [data-wrap="ended"]`), true, "when it cleared");
  assert.match(await title(manager), /^\(1\) /, "still to be acknowledged");
  const live = { shape: await shapeOf(manager, item(id)), texts: await itemTexts(manager, item(id)) };

  // The same page without JavaScript: a normal form POST, back with a message.
  const plain = await newPage({ javaScriptEnabled: false });
  await signIn(plain, rig.server.base, NORTH_EMPLOYEE, "/employee");
  assert.deepEqual(await shapeOf(plain, item(id)), live.shape, "server-rendered like the live item");
  const plainTexts = await itemTexts(plain, item(id));
  for (const k of ["name", "kind", "what", "value", "peak", "range", "state", "ack-by", "comment"]) {
    assert.equal(plainTexts[k], live.texts[k], k);
  }
  await plain.click(`${item(id)} details.ack > summary`);
  // `required` stops an empty form in the browser; a blank one reaches the rig.server.
  await plain.fill(`${item(id)} textarea`, "  ");
  await Promise.all([plain.waitForURL("**/employee#alarms"), plain.click(`${item(id)} form.ack-form button[type=submit]`)]);
  assert.match(await plain.textContent(".alert-error"), /Not acknowledged: write the corrective action taken \(1–1000 characters\)\./);
  await plain.click(`${item(id)} details.ack > summary`);
  await plain.fill(`${item(id)} textarea`, "Door seal replaced");
  const took = await timed(
    [manager],
    () => Promise.all([plain.waitForURL("**/employee#alarms"), plain.click(`${item(id)} form.ack-form button[type=submit]`)]),
    (sel) => document.querySelector(sel) === null,
    item(id),
  );
  t.diagnostic(`acknowledged without JavaScript; gone from the manager's open list ${took} ms after the form was sent`);
  assert.ok(took < LIVE_MS);
  assert.match(await plain.textContent(".alert-ok"), /Acknowledged the alarm of Freezer North\./);
  assert.equal(await plain.locator(item(id)).count(), 0, "acknowledged and cleared: no longer open");
  assert.doesNotMatch(await title(manager), /^\(\d+\)/);
  pages.plain = plain;
  pages.secondId = id;
});

test("device page: rules (form, errors in words, band on the chart) and alarm history", { skip, timeout: 60 * SECOND }, async () => {
  const { manager, employee } = pages;
  await manager.goto(`${rig.server.base}/devices/${NORTH_DEVICE.id}`);
  await liveIs(manager, "Live");
  assert.deepEqual(await slotTexts(manager, '#rules-table tr[data-rule="temperature-1"]'), {
    what: "Probe 1 temperature", min: "–", max: "-15.0 °C", delay: "none",
  });
  const chart = ".chart-large";
  assert.equal(await manager.getAttribute(chart, "data-bands"), "1", "the rule's band on the chart");
  assert.equal(await manager.locator(`${chart} line.limit`).count(), 1, "its one limit");
  // History: both alarms, newest first, acknowledged and cleared, with who and what was done.
  const history = manager.locator("#alarm-history > li[data-alarm]");
  assert.equal(await history.count(), 2);
  assert.deepEqual(await history.evaluateAll((l) => l.map((li) => li.dataset.alarm)), [pages.secondId, first.id]);
  const old = await itemTexts(manager, `#alarm-history > li[data-alarm="${first.id}"]`);
  assert.equal(old["ack-by"], NORTH_EMPLOYEE.email);
  assert.equal(old.comment, COMMENT);
  assert.equal(old.state, "Cleared");

  // Edit: a band upside down is refused in words, naming the row; a good one is saved and drawn.
  await manager.click("#rules-edit > summary");
  const form = manager.locator("#rules-form");
  await form.locator('input[name="temperature-1-min"]').fill("-10");
  await form.locator("button[type=submit]").click();
  assert.match(await form.locator('[data-slot="error"]').textContent(), /Probe 1 temperature: min must be below max\./);
  await form.locator('input[name="temperature-1-min"]').fill("-25");
  await form.locator('input[name="temperature-2-max"]').fill("-12.5");
  await form.locator('input[name="temperature-2-delay"]').fill("10");
  await form.locator("button[type=submit]").click();
  await manager.waitForFunction(() => document.querySelectorAll("#rules-table tbody tr").length === 2);
  assert.match(await manager.textContent("#rules-saved"), /Saved 2 rules\./);
  assert.deepEqual(await slotTexts(manager, '#rules-table tr[data-rule="temperature-2"]'), {
    what: "Probe 2 temperature", min: "–", max: "-12.5 °C", delay: "10 min",
  });
  assert.equal(await manager.getAttribute(chart, "data-bands"), "2");
  assert.equal(await manager.locator(`${chart} line.limit`).count(), 3);
  const rulesShape = await shapeOf(manager, "#rules-table");
  await manager.reload();
  assert.deepEqual(await shapeOf(manager, "#rules-table"), rulesShape, "rule rows built like the server's");
  assert.equal(await manager.inputValue('#rules-form input[name="temperature-2-delay"]'), "10");
  await shoot(manager, "device-rules");
  await manager.click("#rules-edit > summary");
  await shoot(manager, "device-rules-phone", true);

  // A new alarm shows in the history live, and can be acknowledged there.
  await timed([manager], () => reading(NORTH_DEVICE, -8), () => document.querySelectorAll("#alarm-history > li[data-alarm]").length === 3);
  const newest = manager.locator("#alarm-history > li[data-alarm]").first();
  assert.equal(await newest.locator('[data-slot="range"]').textContent(), "-25.0 °C to -15.0 °C");
  await newest.locator("details.ack > summary").click();
  await newest.locator("textarea").fill("Checked: door was open");
  await newest.locator("button[type=submit]").click();
  await manager.waitForFunction(() => document.querySelector('#alarm-history > li[data-alarm] [data-slot="ack-by"]').textContent !== "");
  assert.equal(await newest.locator('[data-slot="ack-by"]').textContent(), NORTH_MANAGER.email);
  await reading(NORTH_DEVICE, -18); // cleared: nothing open is left for the next test

  // Employees see the rules, and no form to change them.
  await employee.goto(`${rig.server.base}/devices/${NORTH_DEVICE.id}`);
  assert.equal(await employee.locator("#rules-table tbody tr").count(), 2);
  assert.equal(await employee.locator("#rules-form").count(), 0);
  assert.match(await employee.textContent("#rules"), /Only administrators and the site's managers may change the rules\./);
  await employee.goto(`${rig.server.base}/employee`);
});

test("rules without JavaScript: the form saves for a manager, says why not for a bad rule", { skip, timeout: 60 * SECOND }, async () => {
  const plain = await newPage({ javaScriptEnabled: false });
  await signIn(plain, rig.server.base, NORTH_MANAGER, "/manager");
  await plain.goto(`${rig.server.base}/devices/${NORTH_DEVICE.id}`);
  await plain.click("#rules-edit > summary");
  await plain.fill('input[name="temperature-2-min"]', "-5");
  await Promise.all([plain.waitForURL(`**/devices/${NORTH_DEVICE.id}#rules`), plain.click("#rules-form button[type=submit]")]);
  assert.match(await plain.textContent(".alert-error"), /Rules not saved\. Probe 2 temperature: min must be below max\./);
  await plain.click("#rules-edit > summary");
  await plain.fill('input[name="temperature-2-min"]', "");
  await plain.fill('input[name="temperature-2-max"]', "");
  await Promise.all([plain.waitForURL(`**/devices/${NORTH_DEVICE.id}#rules`), plain.click("#rules-form button[type=submit]")]);
  assert.match(await plain.textContent(".alert-ok"), /Saved 1 rule for Freezer North\./);
  assert.equal(await plain.locator("#rules-table tbody tr").count(), 1);
});
