// Keeps a dashboard live from /api/realtime. The browser's EventSource resends the last id on
// reconnect; the first connection starts after the id the page was rendered at.
(function () {
  "use strict";
  var script = document.currentScript;
  var start = script && script.dataset.lastEventId;
  var live = document.getElementById("live");
  var url = "/api/realtime" + (start ? "?lastEventId=" + encodeURIComponent(start) : "");
  var source = new EventSource(url);

  function setLive(open) {
    if (!live) return;
    live.dataset.state = open ? "open" : "connecting";
    live.textContent = open ? "Live" : "Reconnecting…";
  }

  function row(deviceId) {
    return document.querySelector('tr[data-device="' + CSS.escape(deviceId) + '"]');
  }

  function fmt(v, unit) {
    return typeof v === "number" ? v.toFixed(1) + unit : "–";
  }

  source.onopen = function () { setLive(true); };
  source.onerror = function () { setLive(false); };
  source.onmessage = function (e) {
    var msg;
    try { msg = JSON.parse(e.data); } catch (_) { return; }
    var d = msg.data || {};
    var tr = d.deviceId && row(d.deviceId);
    if (msg.type === "new_telemetry" && tr && !d.historical) {
      if ("temperature" in d) tr.querySelector(".t1").textContent = fmt(d.temperature, " °C");
      if ("temperature2" in d) tr.querySelector(".t2").textContent = fmt(d.temperature2, " °C");
      if ("battery" in d) tr.querySelector(".bat").textContent = d.battery + " %";
    } else if (msg.type === "device_status_changed" && tr) {
      tr.querySelector(".status").textContent = d.status;
    } else if (msg.type === "new_device" && !tr) {
      var body = document.querySelector("#devices tbody");
      if (!body) return;
      var r = document.createElement("tr");
      r.dataset.device = d.deviceId;
      ["deviceName", "model"].forEach(function (k) {
        var td = document.createElement("td"); td.textContent = d[k] || ""; r.appendChild(td);
      });
      [["", "unassigned"], ["status", "ONLINE"], ["t1", "–"], ["t2", "–"], ["bat", "–"]].forEach(function (c) {
        var td = document.createElement("td"); td.className = c[0]; td.textContent = c[1]; r.appendChild(td);
      });
      body.appendChild(r);
    }
  };
})();
