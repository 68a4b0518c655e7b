// A live sensorcast page: shows what the server rendered in local time, draws the charts, and
// keeps everything current from /api/realtime. Loaded as a module by templates/base.html on
// pages rendered with an event id (<body data-last-event-id>); no inline script anywhere.

import { listen, refreshAlarms } from "./alarms.js";
import { drawAll, setBands, setSeries } from "./chart.js";
import { listenCommands } from "./commands.js";
import { flash, localizeTimes, readJson } from "./dom.js";
import { handlers } from "./live.js";
import { openSharedStream } from "./tabs.js";
import "./push.js";

function setLive(open) {
  const live = document.getElementById("live");
  if (!live) return;
  live.hidden = false;
  live.dataset.state = open ? "open" : "connecting";
  live.textContent = open ? "Live" : "Reconnecting…";
}

/** Everything that reads the server-rendered <main>: on load and after a resync. */
function enhance() {
  setSeries(readJson("chart-data"));
  const detail = document.querySelector("[data-detail]")?.dataset.detail;
  if (detail) setBands(detail, readJson("rules-data"));
  localizeTimes();
  refreshAlarms();
  drawAll();
  exportInLocalTime();
  listenCommands();
}

/**
 * `resync`: the server did not replay what the page missed, so the page loads its data again:
 * this page's own HTML, fetched and put in place of <main> (the stream stays open). Falls back
 * to a full reload.
 */
async function reloadData() {
  try {
    const r = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok || r.redirected) throw new Error(`page answered ${r.status}`);
    const page = new DOMParser().parseFromString(await r.text(), "text/html");
    const main = page.querySelector("main");
    const from = Number(page.body.dataset.lastEventId);
    if (!main || !Number.isSafeInteger(from)) throw new Error("not a live page");
    document.querySelector("main").replaceWith(document.adoptNode(main));
    enhance();
    return from;
  } catch {
    location.reload();
    return new Promise(() => {}); // the page is going away
  }
}

function exportInLocalTime() {
  const form = document.getElementById("export-form");
  if (!form) return;
  const hint = document.getElementById("export-tz");
  if (hint) hint.textContent = "Times are in your time zone; empty means open-ended.";
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const name of ["since", "until"]) {
      const v = form.elements[name].value;
      if (v) params.set(name, String(new Date(v).getTime()));
    }
    const query = params.toString();
    location.assign(form.action + (query ? `?${query}` : ""));
  });
}

/** Connected browsers change without events: ask now and then (never per event). */
function pollClients() {
  if (!document.querySelector('[data-stat="clients"]')) return;
  async function ask() {
    if (document.hidden) return;
    try {
      const r = await fetch("/api/realtime/stats", { credentials: "same-origin" });
      const j = r.ok ? await r.json() : null;
      const stat = document.querySelector('[data-stat="clients"]');
      if (j && stat && stat.textContent !== String(j.clients)) {
        stat.textContent = String(j.clients);
        flash(stat, "bump");
      }
    } catch {
      // the stream's indicator already says when the server is away
    }
  }
  setTimeout(ask, 1500); // this page's own stream counts too
  setInterval(ask, 15000);
}

listen();
enhance();
pollClients();
let resizeTimer;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(drawAll, 150);
});
// Relative times and the chart window move on even without events.
setInterval(() => localizeTimes(), 15000);
setInterval(drawAll, 5 * 60000);
setLive(false);
openSharedStream({
  user: document.body.dataset.user,
  after: Number(document.body.dataset.lastEventId) || 0,
  devices: document.querySelector("[data-detail]")?.dataset.detail,
  on: handlers,
  resync: reloadData,
  state: setLive,
});
