// What each stream event changes on the page, from the event JSON alone (nothing is fetched per
// event): the device's card, table row and device page, the figures, the lists (devices to
// place, alarms (alarms.js), readings, the event log) and toasts. New items are clones of the page's
// templates (dom.js); device names and every other text go in as text only.

import { onCommandStatus } from "./commands.js";
import { showAlarm } from "./alarms.js";
import { addPoint } from "./chart.js";
import {
  clone, deviceViews, fill, flash, linkDevice, prepend, setTime, show, slots,
} from "./dom.js";
import * as fmt from "./format.js";

const byId = (id) => document.getElementById(id);
const nameOf = (d) => d.deviceName || d.deviceId;
/** Hides a list's "nothing yet" line once the list has an item. */
const hideEmpty = (id) => {
  const el = byId(id);
  if (el) el.hidden = true;
};

function bumpStat(name, delta) {
  const s = document.querySelector(`[data-stat="${name}"]`);
  if (!s) return;
  s.textContent = String((Number(s.textContent) || 0) + delta);
  flash(s, "bump");
}

/** Points a fresh clone at device `d`: its id, links, name and the other slots in `values`. */
function bind(root, d, values = {}) {
  root.dataset.device = d.deviceId;
  linkDevice(root, d.deviceId);
  fill(root, { name: nameOf(d), model: d.model, "device-id": d.deviceId, ...values });
  for (const chart of root.querySelectorAll("[data-chart]")) {
    chart.dataset.chart = d.deviceId;
    // The template's label ends where the device name goes.
    chart.setAttribute("aria-label", (chart.getAttribute("aria-label") || "") + nameOf(d));
  }
  return root;
}

/** A device shown on this page only from now on: a card and a table row, where the page has them. */
function addDevice(d, site) {
  const added = [];
  const cards = byId("cards");
  const card = cards && clone("tpl-card");
  if (card) {
    cards.append(bind(card, d, { site }));
    added.push(card);
  }
  const rows = document.querySelector("#device-table tbody");
  const row = rows && clone("tpl-device-row");
  if (row) {
    rows.append(bind(row, d, { site }));
    flash(row, "flash");
    hideEmpty("device-table-empty");
    added.push(row);
  }
  if (added.length) {
    bumpStat("devices", 1);
    bumpStat("online", 1); // the template shows a new device online, as it is
  }
  return added;
}

/** Shows reading `d` in a card, row or the device page, unless it already shows a newer one. */
function showReading(view, d) {
  // Late deliveries are older readings: like the server (`latest_readings`), show the newest.
  if (Number(view.dataset.measured ?? -Infinity) > d.measuredAt) return;
  view.dataset.measured = String(d.measuredAt);
  const humidity = fmt.humidityOf(d);
  const alarms = fmt.hasAlarms(d);
  fill(view, {
    temperature: fmt.temp(d.temperature),
    temperature2: fmt.temp(d.temperature2),
    humidity: fmt.percent(humidity),
    battery: fmt.battery(d.battery),
    alarms: alarms ? fmt.describeAlarms(d.alarms) : "",
  });
  for (const w of view.querySelectorAll('[data-wrap="humidity"]')) w.hidden = humidity === null;
  show(view, "alarms", alarms);
  for (const b of slots(view, "battery")) b.classList.toggle("low", fmt.batteryLow(d.battery));
  setTime(view, "updated", d.measuredAt);
  flash(view, "flash");
}

function addReadingRow(d) {
  const detail = document.querySelector("[data-detail]");
  const body = document.querySelector("#readings-table tbody");
  if (!detail || !body || detail.dataset.detail !== d.deviceId) return;
  const tr = clone("tpl-reading");
  if (!tr) return;
  const alarms = fmt.hasAlarms(d);
  tr.classList.toggle("row-alarm", alarms);
  setTime(tr, "at", d.measuredAt);
  show(tr, "historical", d.historical === true);
  fill(tr, {
    temperature: fmt.temp(d.temperature),
    temperature2: fmt.temp(d.temperature2),
    humidity: fmt.percent(fmt.humidityOf(d)),
    battery: fmt.battery(d.battery),
    alarms: alarms ? fmt.describeAlarms(d.alarms) : "",
  });
  prepend(body, tr, 50); // as many as the page lists (`RECENT_ROWS`)
  hideEmpty("readings-empty");
  flash(tr, "flash");
}

function addPlaceItem(d) {
  const list = byId("unassigned-list");
  const li = list && clone("tpl-place");
  if (!li) return;
  bind(li, d);
  li.querySelector("form").action = `/admin/devices/${encodeURIComponent(d.deviceId)}/site`;
  list.append(li);
  hideEmpty("unassigned-empty");
  const count = document.querySelector('[data-count="unassigned"]');
  if (count) count.textContent = String(list.children.length);
}

/** One line of the event log, as the server writes it (`EventLine`). */
export function logEvent(msg, id) {
  const log = byId("event-log");
  const label = fmt.eventLabel(msg.type);
  // The page may already list it (stored between rendering and connecting).
  if (!log || !label || id === null || log.querySelector(`[data-id="${id}"]`)) return;
  const li = clone("tpl-event");
  if (!li) return;
  const d = msg.data || {};
  li.dataset.id = String(id);
  li.classList.toggle("log-alarm", fmt.hasAlarms(d));
  setTime(li, "at", msg.timestamp);
  for (const badge of slots(li, "label")) badge.dataset.kind = msg.type;
  linkDevice(li, typeof d.deviceId === "string" ? d.deviceId : "");
  fill(li, {
    label,
    name: typeof d.deviceName === "string" ? d.deviceName : "",
    summary: fmt.eventSummary(msg.type, d),
  });
  prepend(log, li, 50);
  hideEmpty("event-log-empty");
  flash(li, "fresh");
}

export function toast(kind, title, text) {
  const box = byId("toasts");
  const t = box && clone("tpl-toast");
  if (!t) return;
  t.dataset.kind = kind;
  if (kind === "alarm") t.setAttribute("role", "alert");
  fill(t, { title, text });
  box.append(t);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => {
    t.classList.add("leaving");
    setTimeout(() => t.remove(), 350);
  }, kind === "alarm" ? 10000 : 6000);
}

/** The admin's "last accepted delivery": an event with a reading or a device came from one. */
const lastDelivery = (ms) => setTime(document, "last-delivery", ms);

function onTelemetry(d, msg, id) {
  lastDelivery(msg.timestamp);
  let views = [...deviceViews(d.deviceId)];
  if (!views.length) {
    // Placed into one of this user's sites since the page loaded: the event does not say which.
    views = addDevice(d, "Just placed");
    if (views.length) toast("device", "New device", nameOf(d));
  }
  bumpStat("readings", 1);
  addPoint(d);
  // What a reading's alarms raise comes as alarm_raised (a toast and the alarm lists).
  if (!d.historical) views.forEach((v) => showReading(v, d));
  addReadingRow(d);
  logEvent(msg, id);
}

function onStatus(d, msg, id) {
  const views = deviceViews(d.deviceId);
  const before = views.length ? views[0].dataset.status : null;
  for (const v of views) {
    v.dataset.status = d.status;
    fill(v, { status: fmt.statusLabel(d.status) });
  }
  if (before && before !== d.status) {
    bumpStat("online", d.status === "ONLINE" ? 1 : -1);
    bumpStat("offline", d.status === "ONLINE" ? -1 : 1);
  }
  toast("status", d.status === "ONLINE" ? "Back online" : "Offline", nameOf(d));
  logEvent(msg, id);
}

function onNewDevice(d, msg, id) {
  lastDelivery(msg.timestamp);
  if (!deviceViews(d.deviceId).length) {
    addDevice(d);
    addPlaceItem(d);
    toast("device", "New device", nameOf(d) + (d.model ? ` · ${d.model}` : ""));
  }
  logEvent(msg, id);
}

/** An alarm raised: a toast, and the alarm lists. */
function onAlarmRaised(a) {
  const t = fmt.alarmTexts(a);
  const what = [t.what, t.value].filter(Boolean).join(": ");
  toast("alarm", `Alarm · ${nameOf(a)}`, `${t.kind} · ${what}${t.range ? ` (allowed ${t.range})` : ""}`);
  showAlarm(a);
}

/** Stream handlers by event type. */
export const handlers = {
  new_telemetry: onTelemetry,
  device_status_changed: onStatus,
  new_device: onNewDevice,
  alarm_raised: onAlarmRaised,
  alarm_acknowledged: showAlarm,
  alarm_cleared: showAlarm,
  command_status: onCommandStatus,
};
