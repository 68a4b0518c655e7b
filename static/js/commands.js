// The device page's commands panel: the form sent as JSON (refusals shown in words), only the
// fields of the chosen command shown, and each command's status kept live from command_status.

import { clone, fill, flash, prepend, setTime } from "./dom.js";
import { toCelsius } from "./format.js";

const MAX_ROWS = 50;

function deviceId() {
  return document.querySelector("[data-detail]")?.dataset.detail;
}

/** Shows the fields that belong to the chosen command. */
function showFields(form) {
  const chosen = form.elements.command.value;
  for (const label of form.querySelectorAll("[data-for]")) {
    label.hidden = label.dataset.for !== chosen;
  }
}

function body(form) {
  const f = form.elements;
  const command = f.command.value;
  const out = { command };
  const number = (name) => (f[name].value === "" ? undefined : Number(f[name].value));
  if (command === "set_report_interval") out.minutes = number("minutes");
  if (command === "set_threshold") {
    out.probe = number("probe");
    // Typed in the form's unit; the API takes °C.
    const degrees = (name) => {
      const v = number(name);
      return v === undefined ? null : toCelsius(v, f.unit?.value);
    };
    out.min = degrees("min");
    out.max = degrees("max");
  }
  if (command === "fetch_history") {
    // datetime-local is the browser's local time.
    out.from = f.from.value ? new Date(f.from.value).getTime() : undefined;
    out.to = f.to.value ? new Date(f.to.value).getTime() : undefined;
  }
  return out;
}

async function send(form) {
  const error = form.querySelector('[data-slot="error"]');
  error.hidden = true;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  try {
    const r = await fetch(`/api/devices/${encodeURIComponent(deviceId())}/commands`, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "content-type": "application/json",
        "x-csrf-token": form.elements.csrf.value,
      },
      body: JSON.stringify(body(form)),
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.message || `The server answered ${r.status}.`);
    }
  } catch (e) {
    error.textContent = e.message.startsWith("Failed to fetch")
      ? "The server could not be reached; try again."
      : e.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

/** `command_status`: the row of that command, added if the page does not have it yet. */
export function onCommandStatus(d) {
  const table = document.querySelector("#commands-table tbody");
  if (!table || d.deviceId !== deviceId()) return;
  let row = table.querySelector(`tr[data-command-id="${d.commandId}"]`);
  if (!row) {
    row = clone("tpl-command");
    if (!row) return;
    row.dataset.commandId = String(d.commandId);
    fill(row, { command: d.command, detail: "", by: "" });
    setTime(row, "at", d.at);
    prepend(table, row, MAX_ROWS);
    const empty = document.getElementById("commands-empty");
    if (empty) empty.hidden = true;
  }
  row.dataset.status = d.status;
  fill(row, { status: d.status, error: d.error ?? "" });
  flash(row, "bump");
}

export function listenCommands() {
  const form = document.querySelector("form.command-form");
  if (!form) return;
  showFields(form);
  form.elements.command.addEventListener("change", () => showFields(form));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send(form);
  });
}
