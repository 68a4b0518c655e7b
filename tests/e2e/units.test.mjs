// °F in the browser, against the real binary: the admin chooses °F on the settings page; the
// device page then shows the server's values and each live reading from the stream in °F, the
// chart's axis and rule band in °F, and the rules form sends °F typed values to the API as °C.
// Run: node --test tests/e2e/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ADMIN, api, browserTests, liveIs, serverAndBrowser, signIn } from "./lib.mjs";

const env = await browserTests("units");
const { skip } = env;
const SECOND = 1000;
const DEVICE = { id: "1988618061618400401", eui: "24e124707e0a0401", name: "Freezer F" };


const rig = serverAndBrowser(env);

test("a reader who chooses °F sees °F, live and in the chart; the API gets °C", { skip, timeout: 60 * SECOND }, async () => {
  await rig.server.postReading({ event: "f-0", ...DEVICE, t1: -20.0, t2: 3.5 });
  const context = await rig.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  await signIn(page, rig.server.base, ADMIN, "/admin");

  await page.goto(`${rig.server.base}/settings`);
  await page.check('input[name="unit"][value="F"]');
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/settings") && r.request().method() === "GET"),
    page.click('form[action="/settings"] button[type="submit"]'),
  ]);
  assert.match(await page.textContent(".alert-ok"), /temperatures in °F/);

  await page.goto(`${rig.server.base}/devices/${DEVICE.id}`);
  await liveIs(page, "Live");
  const stat = () => page.textContent('.stat-value[data-slot="temperature"]');
  assert.equal(await stat(), "-4.0 °F", "rendered by the server");

  // A reading from the stream, formatted by the page script.
  await rig.server.postReading({ event: "f-1", ...DEVICE, t1: -18.5, t2: 3.5 });
  await page.waitForFunction(() =>
    document.querySelector('.stat-value[data-slot="temperature"]')?.textContent === "-1.3 °F", null, { timeout: 5000 });

  // The rules form takes °F; the API stores °C; the band is labelled in °F.
  await page.click("#rules-edit > summary");
  await page.fill('input[name="temperature-1-min"]', "-13");
  await page.fill('input[name="temperature-1-max"]', "5");
  await page.click('#rules-form button[type="submit"]');
  await page.waitForSelector("#rules-saved:not([hidden])");
  const rules = await api(page, "GET", `/api/devices/${DEVICE.id}/rules`);
  assert.deepEqual(
    rules.json.rules.map((r) => [r.quantity, r.probe, r.min, r.max]),
    [["temperature", 1, -25, -15]],
  );
  const table = await page.textContent("#rules-table tbody");
  assert.match(table, /-13\.0 °F/);
  assert.match(table, /5\.0 °F/);
  const labels = await page.$$eval(".chart-large text.limit-label", (ts) => ts.map((t) => t.textContent));
  assert.deepEqual(labels.sort(), ["P1 max 5°", "P1 min -13°"]);
  // The axis spans the readings and the band in °F: every label lies within a °F range.
  const axis = await page.$$eval(".chart-large text.axis", (ts) => ts.map((t) => t.textContent).filter((t) => /^-?\d+(\.\d)?°$/.test(t)));
  assert.ok(axis.length >= 3, `axis labels: ${axis}`);
  for (const a of axis) {
    const v = Number(a.slice(0, -1));
    assert.ok(v > -20 && v < 45, `°F axis label ${a}`);
  }
  await context.close();
});
