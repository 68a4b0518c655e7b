// The HACCP report as an inspector gets it: headless Chromium renders a site's report with its
// print stylesheet and prints it to PDF (page.pdf(), A4); the PDF's own text (read back with
// pdf.js) holds the site, the period, the excursion with its peak, and the corrective action
// the employee entered. Run: node --test tests/e2e/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ADMIN, api, browserTests, serverAndBrowser, signIn } from "./lib.mjs";

const env = await browserTests("report PDF");
const { skip } = env;
const SECOND = 1000;
const DEVICE = { id: "1988618061618400401", eui: "24e124707e060401", name: "Cold store 4" };
const ACTION = "Stock moved to cold store 2";


const rig = serverAndBrowser(env);

/** Every text item of every page of the PDF, joined and with runs of white space as one. */
async function pdfText(bytes) {
  const { getDocument } = await import("pdfjs-dist/legacy/build/pdf.mjs");
  const doc = await getDocument({ data: new Uint8Array(bytes), useSystemFonts: false }).promise;
  const parts = [];
  for (let n = 1; n <= doc.numPages; n++) {
    const content = await (await doc.getPage(n)).getTextContent();
    parts.push(content.items.map((i) => i.str).join(" "));
  }
  return { pages: doc.numPages, text: parts.join(" ").replace(/\s+/g, " ") };
}

test("the site report prints to a PDF that shows the excursion and its corrective action", { skip, timeout: 60 * SECOND }, async () => {
  const context = await rig.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  await signIn(page, rig.server.base, ADMIN, "/admin");
  const t0 = Date.now() - 30 * 60 * SECOND;
  const at = (min) => t0 + min * 60 * SECOND;
  await rig.server.postReading({ event: "pdf-0", ...DEVICE, t1: -19.0, t2: -19.5, ts: at(0) });
  await page.goto(`${rig.server.base}/admin`);
  const li = page.locator(`#unassigned-list li[data-device="${DEVICE.id}"]`);
  await li.locator("input[name=new_site]").fill("Depot");
  await Promise.all([page.waitForURL("**/admin#unassigned"), li.locator("button").click()]);
  const put = await api(page, "PUT", `/api/devices/${DEVICE.id}/rules`, {
    rules: [{ quantity: "temperature", probe: 1, max: -15, delaySecs: 0 }],
  });
  assert.equal(put.status, 200);
  await rig.server.postReading({ event: "pdf-1", ...DEVICE, t1: -12.5, t2: -19.5, ts: at(10) });
  await rig.server.postReading({ event: "pdf-2", ...DEVICE, t1: -9.8, t2: -19.5, ts: at(20) });
  await rig.server.postReading({ event: "pdf-3", ...DEVICE, t1: -18.9, t2: -19.5, ts: at(25) });
  const alarms = await api(page, "GET", "/api/alarms");
  const alarm = alarms.json.alarms.find((a) => a.deviceId === DEVICE.id);
  assert.ok(alarm, `the excursion raised an alarm: ${JSON.stringify(alarms.json)}`);
  const ack = await api(page, "POST", `/api/alarms/${alarm.alarmId}/acknowledge`, { comment: ACTION });
  assert.equal(ack.status, 200, JSON.stringify(ack.json));

  const sites = await api(page, "GET", "/api/sites");
  const depot = sites.json.find((s) => s.name === "Depot");
  // A day early too: the server's zone may be behind UTC.
  const day = new Date(t0 - 86400 * SECOND).toISOString().slice(0, 10);
  const today = new Date().toISOString().slice(0, 10);
  await page.goto(`${rig.server.base}/sites/${depot.siteId}/report?from=${day}&to=${today}`);
  assert.match(await page.textContent(".report-alarms"), new RegExp(ACTION));
  await page.emulateMedia({ media: "print" });
  assert.equal(await page.isVisible("form.filters"), false, "the period form is not printed");
  const pdf = await page.pdf({ format: "A4", printBackground: false, displayHeaderFooter: true,
    headerTemplate: "<span></span>",
    footerTemplate: '<div style="font-size:8px;width:100%;text-align:center"><span class="pageNumber"></span> / <span class="totalPages"></span></div>',
    margin: { top: "12mm", bottom: "14mm", left: "10mm", right: "10mm" } });
  assert.equal(pdf.subarray(0, 5).toString(), "%PDF-", "a PDF");
  const { pages, text } = await pdfText(pdf);
  assert.ok(pages >= 1);
  assert.match(text, /Temperature log: Depot/, text);
  assert.match(text, new RegExp(`Period ${day} to ${today}`), text);
  assert.match(text, /Alarms and corrective actions/, text);
  assert.match(text, /Cold store 4/, text);
  assert.match(text, /-9\.8/, `the peak of the excursion: ${text}`);
  assert.match(text, new RegExp(ACTION), `the corrective action: ${text}`);
  assert.match(text, /admin@e2e\.test/, `who acknowledged: ${text}`);
  assert.match(text, /1 \/ 1|1 \/ \d/, `page numbers in the footer: ${text}`);
  console.log(`ℹ report PDF: ${pdf.length} bytes, ${pages} page(s), excursion and corrective action found in its text`);
  await context.close();
});

test("a device's 30-day and 1-year charts come from the summaries, with each probe's envelope", { skip, timeout: 60 * SECOND }, async () => {
  const device = { id: "1988618061618400402", eui: "24e124707e060402", name: "Cold store 5" };
  const hour = 3600 * SECOND;
  const start = Math.floor(Date.now() / hour) * hour - 11 * hour;
  // Two readings an hour for five hours, three silent hours, two more hours: two runs.
  let n = 0;
  for (const h of [0, 1, 2, 3, 4, 8, 9]) {
    for (const [m, t1] of [[5, -19.0], [35, -17.0 + h / 10]]) {
      n += 1;
      await rig.server.postReading({ event: `env-${n}`, ...device, t1, t2: 3 + h / 10, ts: start + h * hour + m * 60 * SECOND });
    }
  }
  const context = await rig.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => {
    throw new Error(`script error in the page: ${e.message}`);
  });
  await signIn(page, rig.server.base, ADMIN, "/admin");
  for (const range of ["30d", "1y"]) {
    await page.goto(`${rig.server.base}/devices/${device.id}?range=${range}`);
    const chart = page.locator(".chart-large");
    await page.waitForFunction(() => document.querySelector(".chart-large svg"));
    assert.ok(Number(await chart.getAttribute("data-step")) >= 3600 * SECOND, `${range}: drawn from summaries`);
    const data = await page.evaluate(() => JSON.parse(document.getElementById("chart-data").textContent));
    const s = data[device.id];
    assert.equal(Math.min(...s.la.filter((v) => v !== null)), -19, `${range}: the lowest reading`);
    assert.equal(Math.max(...s.ha.filter((v) => v !== null)), -16.1, `${range}: the highest reading`);
    if (range === "30d") {
      // Hourly steps: the three silent hours split each probe's envelope in two.
      assert.equal(Number(await chart.getAttribute("data-step")), hour);
      assert.deepEqual(s.la.slice(0, 2), [-19, -19], "the lowest of each hour");
      assert.deepEqual(s.ha.slice(0, 2), [-17, -16.9], "the highest of each hour");
      assert.equal(Number(await chart.getAttribute("data-envelopes")), 4, "two runs per probe");
    } else {
      // A year in six-hour steps (at most 2,000 points).
      assert.equal(Number(await chart.getAttribute("data-step")), 6 * hour);
    }
  }
  await context.close();
});
