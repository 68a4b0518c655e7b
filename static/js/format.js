// Text for live updates, written exactly as the server writes it into the page: each function
// names the Rust function (src/web/view.rs unless said otherwise) it mirrors, so a value looks
// the same whether it came with the page or from the stream. Change both together.

export const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

/**
 * Rust's `format!("{:.N}", v)`. It rounds the exact binary value with ties to the even digit,
 * where toFixed rounds ties away from zero (54.5 → "54" vs "55", 0.25 → "0.2" vs "0.3"), and it
 * keeps the sign of -0.
 */
export function fixed(v, digits) {
  const abs = Math.abs(v);
  let text = abs.toFixed(digits);
  if (abs < 1e21) {
    // 100 digits hold the exact value of every double that can be a tie at 0 or 1 digits.
    const exact = abs.toFixed(100);
    const dot = exact.indexOf(".");
    if (/^50*$/.test(exact.slice(dot + 1 + digits))) {
      const kept = exact.slice(0, digits ? dot + 1 + digits : dot);
      if (Number(kept.at(-1)) % 2 === 0) text = kept;
    }
  }
  return v < 0 || Object.is(v, -0) ? `-${text}` : text;
}

// The reader's temperature unit ("C" or "F", `TemperatureUnit::code`): the page says it in
// <body data-unit>; values arrive in °C.
let readerUnit = globalThis.document?.body?.dataset.unit === "F" ? "F" : "C";

/** For a page that learns its unit later (and the tests). */
export function setUnit(unit) {
  readerUnit = unit === "F" ? "F" : "C";
}

export const unit = () => readerUnit;

/** `TemperatureUnit::from_celsius`, with the same double arithmetic. */
export const fromCelsius = (c, u = readerUnit) => (u === "F" ? c * 1.8 + 32 : c);

/** `TemperatureUnit::to_celsius`: a value typed in `u`; from °F rounded to 0.01 °C (half away
 * from zero, as Rust's `round`). */
export function toCelsius(v, u = readerUnit) {
  if (u !== "F") return v;
  const x = ((v - 32) / 1.8) * 100;
  return (Math.sign(x) * Math.round(Math.abs(x))) / 100;
}

/** `temp` */
export const temp = (v, u = readerUnit) => (isNumber(v) ? `${fixed(fromCelsius(v, u), 1)} °${u}` : "–");

/** `percent` */
export const percent = (v) => (isNumber(v) ? `${fixed(v, 0)} %` : "–");

/** `battery` (an integer percentage) */
export const battery = (v) => (isNumber(v) ? `${v} %` : "–");

/** `DeviceView::battery_low` */
export const batteryLow = (v) => isNumber(v) && v < 20;

/** `DeviceView::humidity`: the first humidity, else the second; null when neither was measured. */
export function humidityOf(d) {
  if (isNumber(d.humidity)) return d.humidity;
  return isNumber(d.humidity2) ? d.humidity2 : null;
}

/** `DeviceView::status_label` */
export const statusLabel = (status) => (status === "ONLINE" ? "Online" : "Offline");

/** serde_json's `Value` Display: compact JSON, `null` for what is missing. */
const json = (v) => JSON.stringify(v === undefined ? null : v);
const words = (s) => s.replaceAll("_", " ");
const text = (v) => (typeof v === "string" ? words(v) : json(v));

/** Whether an event's `alarms` is there, as `d.get("alarms").filter(|a| !a.is_null())`. */
export const hasAlarms = (d) => d.alarms !== undefined && d.alarms !== null;

/** `describe_alarm_value`: decoded TS302 alarms (a list) or MDP alarm keys (an object). */
export function describeAlarms(alarms) {
  if (Array.isArray(alarms)) {
    return alarms
      .map((a) => `Probe ${json(a?.channel)} ${text(a?.quantity)}: ${text(a?.kind)}`)
      .join("; ");
  }
  if (alarms !== null && typeof alarms === "object") {
    // serde_json keeps object keys sorted.
    return Object.keys(alarms)
      .sort()
      .map((k) => `${alarmKey(k)}: ${text(alarms[k])}`)
      .join("; ");
  }
  return text(alarms);
}

const PROBES = { chn1: 1, left: 1, 1: 1, chn2: 2, right: 2, 2: 2 };

/** `alarm_key`: `temperature_chn1_alarm` (or `_left_`, `_1_`) → "Probe 1 temperature". */
function alarmKey(key) {
  const base = key.endsWith("_alarm") ? key.slice(0, -"_alarm".length) : key;
  const cut = base.indexOf("_");
  const probe = cut < 0 ? undefined : PROBES[base.slice(cut + 1)];
  return probe ? `Probe ${probe} ${base.slice(0, cut)}` : words(key);
}

const LABELS = { new_telemetry: "Reading", device_status_changed: "Status", new_device: "New device" };

/** `EventLine::parse`: the badge of a log line; undefined for events the log does not show. */
export const eventLabel = (type) => LABELS[type];

/** `EventLine::parse`: the text of a log line. */
export function eventSummary(type, d) {
  if (type === "new_telemetry") {
    const parts = [`${temp(d.temperature)} / ${temp(d.temperature2)}`];
    if (isNumber(d.humidity)) parts.push(`RH ${percent(d.humidity)}`);
    if (Number.isInteger(d.battery)) parts.push(`battery ${d.battery} %`);
    if (d.historical === true) parts.push("(history)");
    if (hasAlarms(d)) parts.push(describeAlarms(d.alarms));
    return parts.join(" · ");
  }
  if (type === "device_status_changed") return typeof d.status === "string" ? d.status : "";
  return typeof d.model === "string" ? d.model : "";
}

// ---- alarms and rules (`alarm_kind_label`, `alarm_what`, `alarm_amount`, `alarm_range`,
// `AlarmFacts::texts`, `delay_words`); tests/e2e/alarm-cases.json holds the cases both test.

const KIND_LABELS = { threshold: "Out of range", device: "Device alarm", offline: "Offline", battery: "Low battery" };
const SEVERITY = { threshold: 3, device: 3, offline: 2, battery: 1 };

/** `alarm_kind_label` */
export const alarmKindLabel = (kind) => KIND_LABELS[kind] ?? "Alarm";

/** `AlarmKind::severity` (src/domain/alarm.rs): higher is worse; 0 for an unknown kind. */
export const alarmSeverity = (kind) => SEVERITY[kind] ?? 0;

/** `alarm_what` */
export function alarmWhat(kind, quantity, probe, cause) {
  const q = typeof quantity === "string" && quantity !== "" ? quantity : null;
  const p = Number.isInteger(probe) && probe > 0 ? probe : null;
  let base;
  if (q !== null && p !== null) base = `Probe ${p} ${q}`;
  else if (q === "battery") base = "Battery";
  else if (q !== null) base = words(q);
  else base = kind === "offline" ? "No contact" : "";
  if (typeof cause !== "string" || cause === "") return base;
  return base === "" ? words(cause) : `${base} (${words(cause)})`;
}

/** `alarm_amount`: null when there is no value. */
export function alarmAmount(quantity, v, u = readerUnit) {
  if (!isNumber(v)) return null;
  if (quantity === "temperature") return temp(v, u);
  if (quantity === "humidity" || quantity === "battery") return percent(v);
  return String(v);
}

/** `alarm_range`: null when the alarm has no band. */
export function alarmRange(quantity, min, max, u = readerUnit) {
  const lo = alarmAmount(quantity, min, u);
  const hi = alarmAmount(quantity, max, u);
  if (lo !== null && hi !== null) return `${lo} to ${hi}`;
  if (hi !== null) return `at most ${hi}`;
  if (lo !== null) return `at least ${lo}`;
  return null;
}

/** `AlarmFacts::texts`, from an alarm's JSON (the API's and the alarm_* events'). */
export function alarmTexts(a, u = readerUnit) {
  const value = alarmAmount(a.quantity, a.value, u);
  const peak = alarmAmount(a.quantity, a.peak, u);
  return {
    kind: alarmKindLabel(a.kind),
    what: alarmWhat(a.kind, a.quantity, a.probe, a.cause),
    value,
    peak: peak === value ? null : peak,
    range: alarmRange(a.quantity, a.min, a.max, u),
    state: a.active ? "Active" : "Cleared",
  };
}

/** `delay_words`: a rule's delay. */
export function delayWords(secs) {
  if (!Number.isInteger(secs) || secs <= 0) return "none";
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return [h && `${h} h`, m && `${m} min`, s && `${s} s`].filter(Boolean).join(" ");
}

/** `RuleView`'s texts: what it watches, its min and max ("–" for none) and its delay. */
export function ruleTexts(r) {
  return {
    what: alarmWhat("threshold", r.quantity, r.probe, null),
    min: alarmAmount(r.quantity, r.min) ?? "–",
    max: alarmAmount(r.quantity, r.max) ?? "–",
    delay: delayWords(r.delaySecs),
  };
}

// ---- times: the server writes them in UTC (`utc`, into <time data-ts>); the browser shows
// them in its own time zone instead.

const DAY = 864e5;
export const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
export const dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
export const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** Today's times to the second, older ones with their date. */
export function moment(ms) {
  const d = new Date(ms);
  return new Date().toDateString() === d.toDateString() ? timeFmt.format(d) : dateFmt.format(d);
}

/** The tooltip of a time. */
export const fullTime = (ms) => fullFmt.format(new Date(ms));

/** "Updated" times: how long ago. */
export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s < 5 ? "just now" : `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < DAY / 1000) return `${Math.floor(s / 3600)} h ago`;
  return dateFmt.format(new Date(ms));
}
