// Keeps a sensorcast page live from /api/realtime: cards, tables, figures, charts, the event log
// and toasts change from the event JSON alone (nothing is fetched per event). Text from webhooks
// (device names) only ever goes through textContent.
(function () {
  "use strict";
  var DAY = 864e5;
  var script = document.currentScript;
  var lastId = Number(script && script.dataset.lastEventId) || 0;
  var live = document.getElementById("live");
  var detail = document.querySelector(".device-detail");
  var series = readJson("chart-data") || {};
  var source = null;
  var retryMs = 1000;

  // ---- formatting (the same as the server's) ----
  function num(v) { return typeof v === "number" && isFinite(v); }
  function fmtTemp(v) { return num(v) ? v.toFixed(1) + " °C" : "–"; }
  function fmtPct(v) { return num(v) ? Math.round(v) + " %" : "–"; }
  function words(s) { return String(s).replace(/_/g, " "); }
  function describeAlarms(a) {
    if (Array.isArray(a)) {
      return a.map(function (x) { return "Probe " + x.channel + " " + words(x.quantity) + ": " + words(x.kind); }).join("; ");
    }
    if (a && typeof a === "object") {
      return Object.keys(a).map(function (k) {
        var v = a[k];
        return alarmKey(k) + ": " + (typeof v === "string" ? words(v) : JSON.stringify(v));
      }).join("; ");
    }
    return String(a);
  }
  // temperature_chn1_alarm (or _left_, _1_) → "Probe 1 temperature", as the server writes it.
  function alarmKey(k) {
    var m = /^([a-z]+)_(chn1|left|1|chn2|right|2)(_alarm)?$/.exec(k);
    if (!m) return words(k);
    return "Probe " + (/1|left/.test(m[2]) ? 1 : 2) + " " + m[1];
  }
  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  var dateFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  var fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  var clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  function fmtTime(ms) {
    var d = new Date(ms);
    return new Date().toDateString() === d.toDateString() ? timeFmt.format(d) : dateFmt.format(d);
  }
  function fmtAgo(ms) {
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s < 5 ? "just now" : s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < DAY / 1000) return Math.floor(s / 3600) + " h ago";
    return dateFmt.format(new Date(ms));
  }

  function readJson(id) {
    var el = document.getElementById(id);
    if (!el) return null;
    try { return JSON.parse(el.textContent); } catch (_) { return null; }
  }

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text != null) e.textContent = text;
    return e;
  }

  function timeEl(ms) {
    var t = el("time", null, fmtTime(ms));
    t.dataset.ts = String(ms);
    t.dateTime = new Date(ms).toISOString();
    t.title = fullFmt.format(new Date(ms));
    return t;
  }

  // Server-rendered times are UTC; show them in the browser's zone ("Updated" ones relative).
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[data-ts]").forEach(function (t) {
      var ms = Number(t.dataset.ts);
      t.title = fullFmt.format(new Date(ms));
      t.textContent = t.closest("[data-field='updated']") ? fmtAgo(ms) : fmtTime(ms);
    });
  }

  // ---- live indicator and the stream ----
  function setLive(open) {
    if (!live) return;
    live.hidden = false;
    live.dataset.state = open ? "open" : "connecting";
    live.textContent = open ? "Live" : "Reconnecting…";
  }

  function connect() {
    var params = ["lastEventId=" + encodeURIComponent(lastId)];
    if (detail) params.push("devices=" + encodeURIComponent(detail.dataset.device));
    source = new EventSource("/api/realtime?" + params.join("&"));
    source.onopen = function () { retryMs = 1000; setLive(true); };
    source.onerror = function () {
      setLive(false);
      // The browser retries by itself unless the server refused (then the source is closed).
      if (source.readyState === EventSource.CLOSED) reconnectLater();
    };
    source.onmessage = onMessage;
  }

  function reconnectLater() {
    source.close();
    setTimeout(function () {
      // A refused stream may mean a sign-out elsewhere: then go to the sign-in page.
      fetch("/api/me", { credentials: "same-origin" }).then(function (r) {
        if (r.status === 401) {
          location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        } else {
          connect();
        }
      }, connect);
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  function onMessage(e) {
    var msg;
    try { msg = JSON.parse(e.data); } catch (_) { return; }
    var id = Number(e.lastEventId);
    if (e.lastEventId) {
      if (id <= lastId) return; // already shown (the page or an earlier connection had it)
      lastId = id;
    }
    var d = msg.data || {};
    var delivery = document.getElementById("last-delivery");
    if (delivery && msg.type !== "device_status_changed") {
      delivery.textContent = "";
      delivery.appendChild(timeEl(msg.timestamp));
    }
    if (msg.type === "new_telemetry") onTelemetry(d);
    else if (msg.type === "device_status_changed") onStatus(d);
    else if (msg.type === "new_device") onNewDevice(d);
    else return;
    logEvent(id, msg);
  }

  // ---- updating what is on the page ----
  function views(deviceId) {
    return document.querySelectorAll('[data-device="' + CSS.escape(deviceId) + '"]');
  }

  function setField(view, field, text) {
    view.querySelectorAll('[data-field="' + field + '"]').forEach(function (f) { f.textContent = text; });
  }

  function flash(node, cls) {
    node.classList.remove(cls);
    void node.offsetWidth; // restart the animation
    node.classList.add(cls);
    setTimeout(function () { node.classList.remove(cls); }, 1300);
  }

  function bumpStat(name, delta) {
    var s = document.querySelector('[data-stat="' + name + '"]');
    if (!s) return;
    s.textContent = String((Number(s.textContent) || 0) + delta);
    flash(s, "bump");
  }

  function onTelemetry(d) {
    var found = views(d.deviceId);
    if (!found.length && document.getElementById("cards") && !document.getElementById("unassigned")) {
      found = [addCard(d)]; // placed into one of this user's sites since the page loaded
      toast("device", "New device", d.deviceName);
    }
    bumpStat("readings", 1);
    addPoint(d);
    if (!d.historical) {
      found.forEach(function (v) {
        if ("temperature" in d) setField(v, "t1", fmtTemp(d.temperature));
        if ("temperature2" in d) setField(v, "t2", fmtTemp(d.temperature2));
        var h = num(d.humidity) ? d.humidity : d.humidity2;
        if (num(h)) {
          setField(v, "humidity", fmtPct(h));
          v.querySelectorAll('[data-wrap="humidity"]').forEach(function (w) { w.hidden = false; });
        }
        if (num(d.battery)) {
          setField(v, "battery", d.battery + " %");
          v.querySelectorAll('[data-field="battery"]').forEach(function (b) { b.classList.toggle("low", d.battery < 20); });
        }
        v.querySelectorAll('[data-field="alarm"]').forEach(function (a) {
          a.textContent = d.alarms ? describeAlarms(d.alarms) : "";
          a.hidden = !d.alarms;
        });
        v.querySelectorAll('[data-field="updated"]').forEach(function (u) {
          u.textContent = "";
          u.appendChild(timeEl(d.measuredAt));
        });
        flash(v, "flash");
      });
      localizeTimes();
    }
    if (d.alarms) {
      toast("alarm", "Alarm · " + (d.deviceName || d.deviceId), describeAlarms(d.alarms));
      addAlarm(d);
    }
    addReadingRow(d);
  }

  function onStatus(d) {
    var found = views(d.deviceId);
    var before = found.length ? found[0].dataset.status : null;
    found.forEach(function (v) {
      v.dataset.status = d.status;
      setField(v, "status", d.status === "ONLINE" ? "Online" : "Offline");
    });
    if (before && before !== d.status) {
      bumpStat("online", d.status === "ONLINE" ? 1 : -1);
      bumpStat("offline", d.status === "ONLINE" ? -1 : 1);
    }
    toast("status", d.status === "ONLINE" ? "Back online" : "Offline", d.deviceName || d.deviceId);
  }

  function onNewDevice(d) {
    if (views(d.deviceId).length) return;
    addTableRow(d);
    addPlaceItem(d);
    bumpStat("devices", 1);
    bumpStat("online", 1);
    toast("device", "New device", (d.deviceName || d.deviceId) + (d.model ? " · " + d.model : ""));
  }

  function deviceLink(d) {
    var a = el("a", null, d.deviceName || d.deviceId);
    a.href = "/devices/" + encodeURIComponent(d.deviceId);
    a.dataset.field = "name";
    return a;
  }

  function addTableRow(d) {
    var body = document.querySelector("#device-table tbody");
    if (!body) return;
    var tr = el("tr");
    tr.dataset.device = d.deviceId;
    tr.dataset.status = "ONLINE";
    var name = el("td");
    name.appendChild(deviceLink(d));
    name.appendChild(el("span", "sub", d.model || ""));
    tr.appendChild(name);
    var site = el("td");
    site.appendChild(el("span", "muted", "Unassigned"));
    tr.appendChild(site);
    var status = el("td");
    var pill = el("span", "pill status-pill", "Online");
    pill.dataset.field = "status";
    status.appendChild(pill);
    tr.appendChild(status);
    ["t1", "t2", "humidity", "battery"].forEach(function (f) {
      var td = el("td", "num", "–");
      td.dataset.field = f;
      tr.appendChild(td);
    });
    var updated = el("td", null, "never");
    updated.dataset.field = "updated";
    tr.appendChild(updated);
    body.appendChild(tr);
    flash(tr, "flash");
    var empty = document.getElementById("device-table-empty");
    if (empty) empty.hidden = true;
  }

  function addPlaceItem(d) {
    var list = document.getElementById("unassigned-list");
    var tpl = document.getElementById("place-template");
    if (!list || !tpl) return;
    var li = tpl.content.firstElementChild.cloneNode(true);
    li.dataset.device = d.deviceId;
    var link = li.querySelector("a");
    link.textContent = d.deviceName || d.deviceId;
    link.href = "/devices/" + encodeURIComponent(d.deviceId);
    li.querySelector(".sub").textContent = (d.model || "") + " · " + d.deviceId;
    li.querySelector("form").action = "/admin/devices/" + encodeURIComponent(d.deviceId) + "/site";
    list.appendChild(li);
    document.getElementById("unassigned-empty").hidden = true;
    var count = document.querySelector('[data-count="unassigned"]');
    if (count) count.textContent = String(list.children.length);
  }

  function addCard(d) {
    var card = el("article", "card device-card");
    card.dataset.device = d.deviceId;
    card.dataset.status = "ONLINE";
    var head = el("header", "card-head");
    var titles = el("div", "card-titles");
    var h3 = el("h3", "card-title");
    h3.appendChild(deviceLink(d));
    titles.appendChild(h3);
    titles.appendChild(el("p", "card-sub", "Just placed"));
    head.appendChild(titles);
    var pill = el("span", "pill status-pill", "Online");
    pill.dataset.field = "status";
    head.appendChild(pill);
    card.appendChild(head);
    var dl = el("dl", "readings");
    [["Probe 1", "t1", "key-1"], ["Probe 2", "t2", "key-2"]].forEach(function (r) {
      var box = el("div", "reading");
      var dt = el("dt");
      dt.appendChild(el("i", "key " + r[2]));
      dt.appendChild(document.createTextNode(r[0]));
      box.appendChild(dt);
      var dd = el("dd", null, "–");
      dd.dataset.field = r[1];
      box.appendChild(dd);
      dl.appendChild(box);
    });
    card.appendChild(dl);
    var minor = el("dl", "minor");
    [["Humidity", "humidity"], ["Battery", "battery"], ["Updated", "updated"]].forEach(function (r) {
      var box = el("div");
      if (r[1] === "humidity") { box.dataset.wrap = "humidity"; box.hidden = true; }
      box.appendChild(el("dt", null, r[0]));
      var dd = el("dd", null, "–");
      dd.dataset.field = r[1];
      box.appendChild(dd);
      minor.appendChild(box);
    });
    card.appendChild(minor);
    var alarm = el("p", "alarm-line");
    alarm.dataset.field = "alarm";
    alarm.hidden = true;
    card.appendChild(alarm);
    var chart = el("div", "chart");
    chart.dataset.chart = d.deviceId;
    card.appendChild(chart);
    document.getElementById("cards").appendChild(card);
    return card;
  }

  function addAlarm(d) {
    var list = document.getElementById("alarm-list");
    if (!list) return;
    var li = el("li");
    li.appendChild(el("span", "dot dot-bad"));
    var body = el("div");
    body.appendChild(deviceLink(d));
    body.appendChild(document.createTextNode(" "));
    body.appendChild(el("span", "muted", fmtTemp(d.temperature) + " / " + fmtTemp(d.temperature2)));
    body.appendChild(el("br"));
    body.appendChild(el("span", "small", describeAlarms(d.alarms)));
    body.appendChild(el("br"));
    var when = el("span", "muted small");
    when.appendChild(timeEl(d.measuredAt));
    body.appendChild(when);
    li.appendChild(body);
    list.insertBefore(li, list.firstChild);
    document.getElementById("alarm-empty").hidden = true;
    localizeTimes(li);
  }

  function addReadingRow(d) {
    var body = detail && document.querySelector("#readings-table tbody");
    if (!body || detail.dataset.device !== d.deviceId) return;
    var tr = el("tr", d.alarms ? "row-alarm" : null);
    var when = el("td");
    when.appendChild(timeEl(d.measuredAt));
    if (d.historical) when.appendChild(el("span", "muted small", " history"));
    tr.appendChild(when);
    [fmtTemp(d.temperature), fmtTemp(d.temperature2), fmtPct(num(d.humidity) ? d.humidity : d.humidity2),
      num(d.battery) ? d.battery + " %" : "–"].forEach(function (t) { tr.appendChild(el("td", "num", t)); });
    tr.appendChild(el("td", null, d.alarms ? describeAlarms(d.alarms) : ""));
    body.insertBefore(tr, body.firstChild);
    while (body.children.length > 100) body.removeChild(body.lastChild);
    var empty = document.getElementById("readings-empty");
    if (empty) empty.hidden = true;
    localizeTimes(tr);
    flash(tr, "flash");
  }

  var LABELS = { new_telemetry: "Reading", device_status_changed: "Status", new_device: "New device" };

  function logEvent(id, msg) {
    var log = document.getElementById("event-log");
    // The page may already list it (stored between rendering and connecting).
    if (!log || log.querySelector('[data-id="' + id + '"]')) return;
    var d = msg.data || {};
    var text;
    if (msg.type === "new_telemetry") {
      var parts = [fmtTemp(d.temperature) + " / " + fmtTemp(d.temperature2)];
      if (num(d.humidity)) parts.push("RH " + fmtPct(d.humidity));
      if (num(d.battery)) parts.push("battery " + d.battery + " %");
      if (d.historical) parts.push("(history)");
      text = parts.join(" · ");
    } else {
      text = msg.type === "device_status_changed" ? d.status : d.model || "";
    }
    var li = el("li", "log-item fresh" + (d.alarms ? " log-alarm" : ""));
    li.dataset.id = String(id);
    var t = el("span", "log-time");
    t.appendChild(timeEl(msg.timestamp));
    li.appendChild(t);
    li.appendChild(el("span", "badge badge-" + msg.type, LABELS[msg.type]));
    var a = deviceLink(d);
    a.className = "log-device";
    a.removeAttribute("data-field");
    li.appendChild(a);
    li.appendChild(el("span", "log-text", d.alarms ? text + " · " + describeAlarms(d.alarms) : text));
    log.insertBefore(li, log.firstChild);
    while (log.children.length > 50) log.removeChild(log.lastChild);
    document.getElementById("event-log-empty").hidden = true;
    localizeTimes(li);
  }

  function toast(kind, title, text) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var t = el("div", "toast toast-" + kind);
    t.setAttribute("role", kind === "alarm" ? "alert" : "status");
    t.appendChild(el("strong", null, title));
    t.appendChild(el("span", null, text));
    box.appendChild(t);
    while (box.children.length > 4) box.removeChild(box.firstChild);
    setTimeout(function () {
      t.classList.add("leaving");
      setTimeout(function () { t.remove(); }, 350);
    }, kind === "alarm" ? 10000 : 6000);
  }

  // ---- charts: inline SVG from the series embedded in the page, extended by live readings ----
  var SVG = "http://www.w3.org/2000/svg";

  function addPoint(d) {
    var s = series[d.deviceId];
    if (!s) {
      if (!document.querySelector('[data-chart="' + CSS.escape(d.deviceId) + '"]') && !views(d.deviceId).length) return;
      s = series[d.deviceId] = { t: [], a: [], b: [], h: [] };
    }
    var at = d.measuredAt;
    var i = s.t.length;
    while (i > 0 && s.t[i - 1] > at) i--;
    if (i > 0 && s.t[i - 1] === at) return; // the same reading again
    s.t.splice(i, 0, at);
    s.a.splice(i, 0, num(d.temperature) ? d.temperature : null);
    s.b.splice(i, 0, num(d.temperature2) ? d.temperature2 : null);
    s.h.splice(i, 0, num(d.humidity) ? d.humidity : null);
    document.querySelectorAll('[data-chart="' + CSS.escape(d.deviceId) + '"]').forEach(drawChart);
  }

  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }

  function drawChart(box) {
    var s = series[box.dataset.chart] || { t: [], a: [], b: [], h: [] };
    var span = Number(box.dataset.span) || DAY;
    var large = box.classList.contains("chart-large");
    var now = Date.now();
    var from = now - span;
    var first = 0;
    while (first < s.t.length && s.t[first] < from) first++;
    // Younger data than the window: fit the x axis to it rather than leave the chart empty.
    if (first < s.t.length && s.t[first] > from) {
      span = Math.max((now - s.t[first]) * 1.1, 60000);
      from = now - span;
    }
    box.textContent = "";
    var w = box.clientWidth || 300;
    var h = box.clientHeight || 84;
    var pts = s.t.length - first;
    box.dataset.points = String(pts);
    if (!pts) {
      box.appendChild(el("p", "chart-empty", "No readings in this period"));
      return;
    }
    var left = large ? 44 : 2, right = large ? 34 : 2, top = large ? 6 : 14, bottom = large ? 22 : 4;
    var lo = Infinity, hi = -Infinity, hlo = Infinity, hhi = -Infinity;
    for (var i = first; i < s.t.length; i++) {
      [s.a[i], s.b[i]].forEach(function (v) { if (v != null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
      if (s.h[i] != null) { hlo = Math.min(hlo, s.h[i]); hhi = Math.max(hhi, s.h[i]); }
    }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (hi - lo < 1) { lo -= 0.5; hi += 0.5; }
    var pad = (hi - lo) * 0.08;
    lo -= pad; hi += pad;
    var x = function (t) { return left + (t - from) / span * (w - left - right); };
    var y = function (v) { return top + (hi - v) / (hi - lo) * (h - top - bottom); };
    var root = svg("svg", { viewBox: "0 0 " + w + " " + h, role: "img" });
    var ticks = large ? 4 : 1;
    for (var k = 0; k <= ticks; k++) {
      var v = lo + (hi - lo) * k / ticks;
      var gy = y(v);
      root.appendChild(svg("line", { x1: left, x2: w - right, y1: gy, y2: gy, "class": "grid" }));
      // Small charts label their lines from inside, above each grid line.
      var label = large ? svg("text", { x: left - 6, y: gy + 3.5, "text-anchor": "end", "class": "axis" })
        : svg("text", { x: left, y: gy - 3, "class": "axis" });
      label.textContent = v.toFixed(Math.abs(hi - lo) < 5 ? 1 : 0).replace(/^-(0(\.0)?)$/, "$1") + "°";
      root.appendChild(label);
    }
    if (!large) {
      // Small charts name their time window in a corner instead of an axis.
      var cap = svg("text", { x: w - right, y: 10, "text-anchor": "end", "class": "axis" });
      cap.textContent = span >= DAY * 0.99 ? "24 h" : span >= 36e5 ? Math.round(span / 36e5) + " h"
        : Math.max(1, Math.round(span / 6e4)) + " min";
      root.appendChild(cap);
    }
    if (large) {
      var steps = w < 520 ? 2 : 4;
      for (var m = 0; m <= steps; m++) {
        var tt = from + span * m / steps;
        var tl = svg("text", { x: x(tt), y: h - 5, "text-anchor": m === 0 ? "start" : m === steps ? "end" : "middle", "class": "axis" });
        tl.textContent = (span > 2 * DAY ? dateFmt : span < 10 * 60000 ? timeFmt : clockFmt).format(new Date(tt));
        root.appendChild(tl);
      }
    }
    // A gap longer than this breaks the line (the device was silent).
    var gap = Math.max(span / 24, 30 * 60000);
    function line(values, cls, scale) {
      var d = "", prevT = null, last = null, run = [];
      // A reading with no neighbour close enough to join is drawn as a dot.
      function endRun() {
        if (run.length === 1) root.appendChild(svg("circle", { cx: run[0][0], cy: run[0][1], r: 1.8, "class": "dot-" + cls }));
        run = [];
      }
      for (var i = first; i < s.t.length; i++) {
        var v = values[i];
        if (v == null) { prevT = null; continue; }
        var cmd = prevT == null || s.t[i] - prevT > gap ? "M" : "L";
        if (cmd === "M") endRun();
        var px = x(s.t[i]), py = scale(v);
        d += cmd + px.toFixed(1) + " " + py.toFixed(1);
        prevT = s.t[i];
        last = [px, py];
        run.push(last);
      }
      endRun();
      if (!d) return null;
      root.appendChild(svg("path", { d: d, "class": "line " + cls }));
      return last;
    }
    if (large && hlo !== Infinity) {
      var hspan = Math.max(hhi - hlo, 5);
      var hy = function (v) { return top + (hlo + hspan - v) / hspan * (h - top - bottom); };
      line(s.h, "line-h", hy);
      var hl = svg("text", { x: w - right + 6, y: top + 8, "class": "axis" });
      hl.textContent = Math.round(hlo + hspan) + "%";
      root.appendChild(hl);
      var hl2 = svg("text", { x: w - right + 6, y: h - bottom, "class": "axis" });
      hl2.textContent = Math.round(hlo) + "%";
      root.appendChild(hl2);
    }
    [["b", "2"], ["a", "1"]].forEach(function (p) {
      var last = line(s[p[0]], "line-" + p[1], y);
      if (last) root.appendChild(svg("circle", { cx: last[0], cy: last[1], r: 3, "class": "last last-" + p[1] }));
    });
    box.appendChild(root);
  }

  function drawAll() { document.querySelectorAll("[data-chart]").forEach(drawChart); }

  // ---- small enhancements ----
  function exportInLocalTime() {
    var form = document.getElementById("export-form");
    if (!form) return;
    var hint = document.getElementById("export-tz");
    if (hint) hint.textContent = "Times are in your time zone; empty means open-ended.";
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var params = [];
      ["since", "until"].forEach(function (name) {
        var v = form.elements[name].value;
        if (v) params.push(name + "=" + new Date(v).getTime());
      });
      location.assign(form.action + (params.length ? "?" + params.join("&") : ""));
    });
  }

  // Connected browsers change without events: ask now and then (never per event).
  function pollClients() {
    var stat = document.querySelector('[data-stat="clients"]');
    if (!stat) return;
    function ask() {
      if (document.hidden) return;
      fetch("/api/realtime/stats", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) { if (j && stat.textContent !== String(j.clients)) { stat.textContent = String(j.clients); flash(stat, "bump"); } })
        .catch(function () {});
    }
    setTimeout(ask, 1500); // this page's own stream counts too
    setInterval(ask, 15000);
  }

  localizeTimes();
  drawAll();
  exportInLocalTime();
  pollClients();
  var resizeTimer;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawAll, 150);
  });
  // Relative times and the chart window move on even without events.
  setInterval(function () { localizeTimes(); }, 15000);
  setInterval(drawAll, 5 * 60000);
  setLive(false);
  connect();
})();
