// Alarms on the page: the dashboards' open alarms (most severe, then oldest, first) and the device
// page's alarm history (newest first), kept live from the alarm_* events; the count of
// unacknowledged alarms in the tab title; the acknowledge and rules forms, sent as JSON with the
// page's anti-forgery token (without the script they post as ordinary forms). Items are clones of
// the page's <template id="tpl-alarm"> (templates/partials/alarm_item.html), filled as text.

import { drawAll, setBands } from "./chart.js";
import { clone, fill, flash, linkDevice, setTime, slots } from "./dom.js";
import * as fmt from "./format.js";

const MAX_COMMENT = 1000;
const baseTitle = document.title.replace(/^\(\d+\) /, "");

/** An alarm is open while it is active or not yet acknowledged. */
const isOpen = (a) => a.active === true || a.acknowledged !== true;

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

function wrap(root, name, visible) {
  for (const w of root.querySelectorAll(`[data-wrap="${name}"]`)) w.hidden = !visible;
}

/** Fills item `li` from alarm JSON `a`, as the server renders it. */
function render(li, a) {
  const t = fmt.alarmTexts(a);
  Object.assign(li.dataset, {
    alarm: String(a.alarmId),
    kind: String(a.kind),
    severity: String(fmt.alarmSeverity(a.kind)),
    started: String(a.startedAt),
    active: String(a.active === true),
    acknowledged: String(a.acknowledged === true),
  });
  linkDevice(li, a.deviceId);
  fill(li, {
    name: a.deviceName || a.deviceId,
    kind: t.kind,
    state: t.state,
    what: t.what,
    value: t.value ?? "",
    peak: t.peak ?? "",
    range: t.range ?? "",
    "ack-by": a.acknowledgedBy ?? "",
    comment: a.comment ?? "",
  });
  wrap(li, "value", t.value !== null);
  wrap(li, "peak", t.peak !== null);
  wrap(li, "range", t.range !== null);
  setTime(li, "started", a.startedAt);
  setTime(li, "raised", a.raisedAt);
  const ended = fmt.isNumber(a.endedAt);
  if (ended) setTime(li, "ended", a.endedAt);
  wrap(li, "ended", ended);
  const acked = a.acknowledged === true;
  if (acked && fmt.isNumber(a.acknowledgedAt)) setTime(li, "ack-at", a.acknowledgedAt);
  wrap(li, "ack", acked);
  wrap(li, "ack-action", !acked);
  const form = li.querySelector("form.ack-form");
  if (form) form.action = `/alarms/${encodeURIComponent(a.alarmId)}/acknowledge`;
}

/** Where an item goes: before the first one that sorts after it. */
function sortsBefore(mode, li, other) {
  const n = (e, k) => Number(e.dataset[k]) || 0;
  if (mode === "history") {
    // Newest first, as the store lists them.
    return n(li, "started") > n(other, "started")
      || (n(li, "started") === n(other, "started") && n(li, "alarm") > n(other, "alarm"));
  }
  // Most severe first, then the oldest.
  if (n(li, "severity") !== n(other, "severity")) return n(li, "severity") > n(other, "severity");
  if (n(li, "started") !== n(other, "started")) return n(li, "started") < n(other, "started");
  return n(li, "alarm") < n(other, "alarm");
}

function place(list, li) {
  const mode = list.dataset.alarms;
  const next = [...list.children].find((o) => o !== li && sortsBefore(mode, li, o));
  if (next) {
    if (li.nextElementSibling !== next) list.insertBefore(li, next);
  } else if (list.lastElementChild !== li) {
    list.append(li);
  }
}

/** The panels' counts, their "nothing yet" lines and the tab title. */
export function refreshAlarms() {
  for (const list of document.querySelectorAll("[data-alarms]")) {
    const panel = list.closest("section") ?? document;
    const count = panel.querySelector('[data-count="alarms"]');
    if (count) count.textContent = String(list.children.length);
    const empty = panel.querySelector("#alarm-empty");
    if (empty) empty.hidden = list.children.length > 0;
  }
  for (const form of document.querySelectorAll("form.ack-form")) countChars(form);
  const unacknowledged = new Set(
    [...document.querySelectorAll('[data-alarms] > [data-alarm][data-acknowledged="false"]')]
      .map((li) => li.dataset.alarm),
  );
  document.title = unacknowledged.size ? `(${unacknowledged.size}) ${baseTitle}` : baseTitle;
}

/**
 * Shows alarm `a` (its JSON after a change) in every alarm list of the page: the open list keeps
 * it while it is open, the device page's history always (for its own device).
 */
export function showAlarm(a) {
  if (!a || !Number.isSafeInteger(a.alarmId)) return;
  for (const list of document.querySelectorAll("[data-alarms]")) {
    const mode = list.dataset.alarms;
    if (mode === "history" && list.closest("[data-detail]")?.dataset.detail !== a.deviceId) continue;
    let li = list.querySelector(`:scope > [data-alarm="${a.alarmId}"]`);
    if (mode === "open" && !isOpen(a)) {
      li?.remove();
      continue;
    }
    const fresh = !li;
    if (fresh) {
      li = clone("tpl-alarm");
      if (!li) continue;
    }
    render(li, a);
    place(list, li);
    flash(li, "fresh");
  }
  refreshAlarms();
}

/** The text of an acknowledgement's refusal, in words. */
function ackRefusal(status, body) {
  switch (status) {
    case 400:
      return `Not acknowledged: write the corrective action taken (1–${MAX_COMMENT} characters).`;
    case 409:
      return "Not acknowledged: someone already acknowledged this alarm.";
    case 404:
      return "Not acknowledged: this alarm does not exist any more, or you may no longer see it.";
    case 401:
      return "Not acknowledged: you are signed out. Sign in again and retry.";
    case 403:
      return body?.error === "csrf_failed"
        ? "Not acknowledged: this page is out of date. Reload it and try again."
        : `Not acknowledged: ${body?.message ?? "you may not do this."}`;
    default:
      return `Not acknowledged: ${body?.message ?? `the server answered ${status}.`} Try again.`;
  }
}

function setError(form, text) {
  for (const e of slots(form, "error")) {
    e.textContent = text ?? "";
    e.hidden = !text;
  }
}

function countChars(form) {
  const area = form.elements.comment;
  if (!area) return;
  const n = [...area.value.trim()].length;
  for (const c of slots(form, "counter")) {
    c.textContent = `${n} / ${MAX_COMMENT} characters`;
    c.classList.toggle("over", n > MAX_COMMENT);
  }
}

async function sendJson(method, url, body) {
  const r = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify(body),
  });
  let json = null;
  try {
    json = await r.json();
  } catch {
    json = null;
  }
  return { status: r.status, ok: r.ok, json };
}

async function acknowledge(form) {
  const li = form.closest("[data-alarm]");
  const button = form.querySelector("button[type=submit]");
  if (!li || button?.disabled) return;
  button.disabled = true;
  setError(form, null);
  try {
    const r = await sendJson("POST", `/api/alarms/${encodeURIComponent(li.dataset.alarm)}/acknowledge`, {
      comment: form.elements.comment.value,
    });
    if (!r.ok) {
      setError(form, ackRefusal(r.status, r.json));
      return;
    }
    form.reset();
    const details = form.closest("details");
    if (details) details.open = false;
    showAlarm(r.json);
  } catch {
    setError(form, "Not acknowledged: the server could not be reached. Check the connection and try again.");
  } finally {
    button.disabled = false;
    countChars(form);
  }
}

// ---- the device page's rules

/** The rules the form describes, or what is wrong with a row, in words. */
function rulesOf(form) {
  const rules = [];
  for (const tr of form.querySelectorAll("tr[data-key]")) {
    const key = tr.dataset.key;
    const [quantity, probe] = key.split("-");
    const what = fmt.alarmWhat("threshold", quantity, Number(probe), null);
    const value = (part) => {
      const field = form.elements[`${key}-${part}`];
      const text = field ? field.value.trim().replace(",", ".") : "";
      return text === "" ? null : Number(text);
    };
    let [min, max, delay] = [value("min"), value("max"), value("delay")];
    if (min === null && max === null) continue;
    for (const [name, v] of [["min", min], ["max", max], ["the delay", delay]]) {
      if (v !== null && !Number.isFinite(v)) return { error: `${what}: ${name} must be a number.` };
    }
    if (min !== null && max !== null && min >= max) return { error: `${what}: min must be below max.` };
    // The API takes °C; the form shows the reader's unit (its hidden `unit` field).
    if (quantity === "temperature") {
      const unit = form.elements.unit?.value ?? fmt.unit();
      if (min !== null) min = fmt.toCelsius(min, unit);
      if (max !== null) max = fmt.toCelsius(max, unit);
    }
    const rule = { quantity, probe: Number(probe), delaySecs: Math.round((delay ?? 0) * 60) };
    if (min !== null) rule.min = min;
    if (max !== null) rule.max = max;
    rules.push(rule);
  }
  return { rules };
}

function ruleRefusal(status, body) {
  if (status === 400) return `Rules not saved. ${body?.message ?? "A rule is not valid."}`;
  if (status === 403) {
    return body?.error === "csrf_failed"
      ? "Rules not saved: this page is out of date. Reload it and try again."
      : "Rules not saved: only administrators and the site's managers may change them.";
  }
  if (status === 404) return "Rules not saved: this device does not exist any more, or you may no longer see it.";
  if (status === 401) return "Rules not saved: you are signed out. Sign in again and retry.";
  return `Rules not saved: ${body?.message ?? `the server answered ${status}.`}`;
}

/** The rules table (and the chart's bands) show `rules`. */
function showRules(deviceId, rules) {
  const table = document.getElementById("rules-table");
  const body = table?.querySelector("tbody");
  if (body) {
    body.replaceChildren(...rules.map((r) => {
      const tr = clone("tpl-rule-row");
      tr.dataset.rule = `${r.quantity}-${r.probe}`;
      return fill(tr, fmt.ruleTexts(r));
    }));
    table.hidden = rules.length === 0;
  }
  const empty = document.getElementById("rules-empty");
  if (empty) empty.hidden = rules.length > 0;
  setBands(deviceId, rules);
  drawAll();
}

async function saveRules(form) {
  const button = form.querySelector("button[type=submit]");
  if (button?.disabled) return;
  const saved = document.getElementById("rules-saved");
  if (saved) saved.hidden = true;
  const { rules, error } = rulesOf(form);
  if (error) {
    setError(form, `Rules not saved. ${error}`);
    return;
  }
  setError(form, null);
  button.disabled = true;
  const deviceId = form.dataset.deviceId;
  try {
    const r = await sendJson("PUT", `/api/devices/${encodeURIComponent(deviceId)}/rules`, { rules });
    if (!r.ok) {
      setError(form, ruleRefusal(r.status, r.json));
      return;
    }
    const now = r.json?.rules ?? rules;
    showRules(deviceId, now);
    const details = form.closest("details");
    if (details) details.open = false;
    if (saved) {
      saved.textContent = now.length === 0 ? "Saved: no rules now."
        : now.length === 1 ? "Saved 1 rule." : `Saved ${now.length} rules.`;
      saved.hidden = false;
    }
  } catch {
    setError(form, "Rules not saved: the server could not be reached. Check the connection and try again.");
  } finally {
    button.disabled = false;
  }
}

/** The forms send JSON; listened for on the document, so that they work after a resync too. */
export function listen() {
  document.addEventListener("submit", (e) => {
    const form = e.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.matches("form.ack-form")) {
      e.preventDefault();
      acknowledge(form);
    } else if (form.matches("form.rules-form")) {
      e.preventDefault();
      saveRules(form);
    }
  });
  document.addEventListener("input", (e) => {
    const form = e.target.closest?.("form.ack-form");
    if (form) countChars(form);
  });
  // Opening an acknowledge form puts the cursor in it.
  document.addEventListener("toggle", (e) => {
    const details = e.target;
    if (details instanceof HTMLDetailsElement && details.open && details.matches("details.ack")) {
      details.querySelector("textarea")?.focus();
    }
  }, true);
}
