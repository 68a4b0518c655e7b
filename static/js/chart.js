// Charts: inline SVG drawn from the series the page embeds (<script id="chart-data">, per device
// id in columns t, a, b, h as `web::view::Series` writes them), extended by live readings. The
// device page's large chart also draws the allowed band of each of its rules (<script
// id="rules-data">, as `web::view::RuleView` writes them). A week or more comes from the
// summaries: a mean per step (`data-step` ms) and each probe's lowest and highest value in
// columns la/ha and lb/hb, drawn as a shaded envelope behind the line. The data is in °C; the
// axis, lines and bands are drawn in the reader's unit.

import { clone } from "./dom.js";
import { clockFmt, dateFmt, fromCelsius, isNumber, timeFmt } from "./format.js";

const DAY = 864e5;
const SVG = "http://www.w3.org/2000/svg";
const empty = () => ({ t: [], a: [], b: [], h: [] });

let series = {};
let bands = {};

/** The series of a freshly loaded page. */
export function setSeries(data) {
  series = data || {};
}

/** The rules of device `id`, whose bands its large chart draws. */
export function setBands(id, rules) {
  if (typeof id === "string") bands[id] = Array.isArray(rules) ? rules : [];
}

const boxes = (id) => document.querySelectorAll(`[data-chart="${CSS.escape(id)}"]`);

/** Adds a reading to its device's series (in time order, once) and redraws its charts. */
export function addPoint(d) {
  let s = series[d.deviceId];
  if (!s) {
    if (!boxes(d.deviceId).length) return;
    s = series[d.deviceId] = empty();
  }
  const at = d.measuredAt;
  let i = s.t.length;
  while (i > 0 && s.t[i - 1] > at) i--;
  if (i > 0 && s.t[i - 1] === at) return; // the same reading again
  s.t.splice(i, 0, at);
  s.a.splice(i, 0, isNumber(d.temperature) ? d.temperature : null);
  s.b.splice(i, 0, isNumber(d.temperature2) ? d.temperature2 : null);
  s.h.splice(i, 0, isNumber(d.humidity) ? d.humidity : null);
  // A live reading is its own envelope.
  for (const [lo, hi, v] of [["la", "ha", d.temperature], ["lb", "hb", d.temperature2]]) {
    if (!s[lo]) continue;
    s[lo].splice(i, 0, isNumber(v) ? v : null);
    s[hi].splice(i, 0, isNumber(v) ? v : null);
  }
  boxes(d.deviceId).forEach(draw);
}

export function drawAll() {
  document.querySelectorAll("[data-chart]").forEach(draw);
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function draw(box) {
  const s = series[box.dataset.chart] || empty();
  let span = Number(box.dataset.span) || DAY;
  const large = box.classList.contains("chart-large");
  const now = Date.now();
  let from = now - span;
  let first = 0;
  while (first < s.t.length && s.t[first] < from) first++;
  // Younger data than the window: fit the x axis to it rather than leave the chart empty.
  if (first < s.t.length && s.t[first] > from) {
    span = Math.max((now - s.t[first]) * 1.1, 60000);
    from = now - span;
  }
  box.replaceChildren(); // measured empty, so that the old drawing does not hold the size
  const w = box.clientWidth || 300;
  const h = box.clientHeight || 84;
  const pts = s.t.length - first;
  box.dataset.points = String(pts);
  if (!pts) {
    box.dataset.bands = "0";
    box.replaceChildren(clone("tpl-chart-empty") ?? "");
    return;
  }
  const left = large ? 44 : 2, right = large ? 34 : 2, top = large ? 6 : 14, bottom = large ? 22 : 4;
  let lo = Infinity, hi = -Infinity, hlo = Infinity, hhi = -Infinity;
  for (let i = first; i < s.t.length; i++) {
    for (const c of [s.a[i], s.b[i], s.la?.[i], s.ha?.[i], s.lb?.[i], s.hb?.[i]]) {
      if (c == null) continue;
      const v = fromCelsius(c);
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (s.h[i] != null) { hlo = Math.min(hlo, s.h[i]); hhi = Math.max(hhi, s.h[i]); }
  }
  const rules = large ? (bands[box.dataset.chart] || []) : [];
  const limits = (r) => [r.min, r.max].filter(isNumber);
  // The temperature limits stay in view, so that the band shows where the readings stand.
  if (lo !== Infinity) {
    for (const r of rules) {
      if (r.quantity !== "temperature") continue;
      for (const v of limits(r).map((c) => fromCelsius(c))) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
  }
  if (lo === Infinity) { lo = 0; hi = 1; }
  if (hi - lo < 1) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const x = (t) => left + ((t - from) / span) * (w - left - right);
  const y = (v) => top + ((hi - v) / (hi - lo)) * (h - top - bottom);
  const yc = (c) => y(fromCelsius(c)); // a temperature of the data (°C)
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, role: "img" });
  const ticks = large ? 4 : 1;
  for (let k = 0; k <= ticks; k++) {
    const v = lo + ((hi - lo) * k) / ticks;
    const gy = y(v);
    root.append(svg("line", { x1: left, x2: w - right, y1: gy, y2: gy, class: "grid" }));
    const label = `${v.toFixed(Math.abs(hi - lo) < 5 ? 1 : 0).replace(/^-(0(\.0)?)$/, "$1")}°`;
    // Small charts label their lines from inside, above each grid line.
    root.append(large
      ? svg("text", { x: left - 6, y: gy + 3.5, "text-anchor": "end", class: "axis" }, label)
      : svg("text", { x: left, y: gy - 3, class: "axis" }, label));
  }
  if (large) {
    const steps = w < 520 ? 2 : 4;
    const fmt = span > 2 * DAY ? dateFmt : span < 10 * 60000 ? timeFmt : clockFmt;
    for (let m = 0; m <= steps; m++) {
      const tt = from + (span * m) / steps;
      const anchor = m === 0 ? "start" : m === steps ? "end" : "middle";
      root.append(svg("text", { x: x(tt), y: h - 5, "text-anchor": anchor, class: "axis" }, fmt.format(new Date(tt))));
    }
  } else {
    // Small charts name their time window in a corner instead of an axis.
    const window = span >= DAY * 0.99 ? "24 h" : span >= 36e5 ? `${Math.round(span / 36e5)} h`
      : `${Math.max(1, Math.round(span / 6e4))} min`;
    root.append(svg("text", { x: w - right, y: 10, "text-anchor": "end", class: "axis" }, window));
  }
  // A gap longer than this breaks the line (the device was silent): from summaries, a step
  // missing; from readings, a 24th of the range.
  const step = Number(box.dataset.step) || 0;
  const gap = step ? 2.5 * step : Math.max(span / 24, 30 * 60000);
  // The envelope of one probe: the area between its lowest and highest values, broken at gaps.
  function envelope(los, his, cls) {
    if (!los || !his) return;
    let run = [];
    const flush = () => {
      if (run.length > 1) {
        const upper = run.map((i) => `${x(s.t[i]).toFixed(1)} ${yc(his[i]).toFixed(1)}`);
        const lower = run.reverse().map((i) => `${x(s.t[i]).toFixed(1)} ${yc(los[i]).toFixed(1)}`);
        root.append(svg("path", { d: `M${upper.join("L")}L${lower.join("L")}Z`, class: `envelope ${cls}` }));
      }
      run = [];
    };
    for (let i = first; i < s.t.length; i++) {
      if (los[i] == null || his[i] == null) { flush(); continue; }
      if (run.length && s.t[i] - s.t[run[run.length - 1]] > gap) flush();
      run.push(i);
    }
    flush();
  }
  function line(values, cls, scale) {
    let d = "", prevT = null, last = null, run = [];
    // A reading with no neighbour close enough to join is drawn as a dot.
    const endRun = () => {
      if (run.length === 1) root.append(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.8, class: `dot-${cls}` }));
      run = [];
    };
    for (let i = first; i < s.t.length; i++) {
      const v = values[i];
      if (v == null) { prevT = null; continue; }
      const cmd = prevT == null || s.t[i] - prevT > gap ? "M" : "L";
      if (cmd === "M") endRun();
      const px = x(s.t[i]), py = scale(v);
      d += `${cmd}${px.toFixed(1)} ${py.toFixed(1)}`;
      prevT = s.t[i];
      last = [px, py];
      run.push(last);
    }
    endRun();
    if (!d) return null;
    root.append(svg("path", { d, class: `line ${cls}` }));
    return last;
  }
  // Each rule's band: what lies outside it shaded, its limits dashed and labelled.
  let drawn = 0;
  function band(r, scale, unit, shown) {
    const [y0, y1] = [top, h - bottom];
    const clamp = (v) => Math.min(y1, Math.max(y0, v));
    const cls = r.quantity === "humidity" ? "h" : String(r.probe);
    const shade = (from, to) => {
      if (to > from) root.append(svg("rect", { x: left, width: Math.max(0, w - left - right), y: from, height: to - from, class: "band-out" }));
    };
    if (isNumber(r.max)) shade(y0, clamp(scale(r.max)));
    if (isNumber(r.min)) shade(clamp(scale(r.min)), y1);
    for (const [name, v] of [["min", r.min], ["max", r.max]]) {
      if (!isNumber(v)) continue;
      const ly = clamp(scale(v));
      root.append(svg("line", { x1: left, x2: w - right, y1: ly, y2: ly, class: `limit limit-${cls}` }));
      const label = `P${r.probe} ${name} ${shown(v)}${unit}`;
      root.append(svg("text", { x: left + 4, y: name === "max" ? ly - 3 : ly + 11, class: `axis limit-label limit-label-${cls}` }, label));
    }
    drawn += 1;
  }
  // A limit in °F to 0.01 at most (every tenth of a °C is), as the rules form shows it.
  const degrees = (c) => Number(fromCelsius(c).toFixed(2));
  for (const r of rules) if (r.quantity === "temperature") band(r, yc, "°", degrees);
  if (large && hlo !== Infinity) {
    const hspan = Math.max(hhi - hlo, 5);
    const hy = (v) => top + ((hlo + hspan - v) / hspan) * (h - top - bottom);
    for (const r of rules) if (r.quantity === "humidity") band(r, hy, "%", (v) => v);
    line(s.h, "line-h", hy);
    root.append(svg("text", { x: w - right + 6, y: top + 8, class: "axis" }, `${Math.round(hlo + hspan)}%`));
    root.append(svg("text", { x: w - right + 6, y: h - bottom, class: "axis" }, `${Math.round(hlo)}%`));
  }
  envelope(s.lb, s.hb, "envelope-2");
  envelope(s.la, s.ha, "envelope-1");
  box.dataset.envelopes = String(root.querySelectorAll(".envelope").length);
  for (const [key, n] of [["b", "2"], ["a", "1"]]) {
    const last = line(s[key], `line-${n}`, yc);
    if (last) root.append(svg("circle", { cx: last[0], cy: last[1], r: 3, class: `last last-${n}` }));
  }
  box.dataset.bands = String(drawn);
  box.replaceChildren(root);
}
