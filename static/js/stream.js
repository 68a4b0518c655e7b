// The connection to /api/realtime: one EventSource, reconnected with the last event id after an
// outage, each event handed to the handler of its `type` once (never one the page already shows).
// `resync` (the server skipped a replay too long to send) pauses delivery while the page reloads
// its data, then delivers only what that data did not have yet.

/**
 * @param {object} o
 * @param {number} o.after   the id of the last event the page shows (rendered with it)
 * @param {string} [o.devices] narrows the stream to these device ids (comma-separated)
 * @param {Record<string, (data: object, msg: object, id: number) => void>} o.on  handlers by type
 * @param {() => Promise<number>} o.resync  reloads the page's data; resolves with its event id
 * @param {(open: boolean) => void} o.state  told when the stream opens or is lost
 */
export function openStream({ after, devices, on, resync, state }) {
  let lastId = after;
  let source = null;
  let retryMs = 1000;
  let held = null; // events that arrive while a resync reloads the page's data

  function connect() {
    const params = new URLSearchParams({ lastEventId: String(lastId) });
    if (devices) params.set("devices", devices);
    source = new EventSource(`/api/realtime?${params}`);
    source.onopen = () => {
      retryMs = 1000;
      state(true);
    };
    source.onerror = () => {
      state(false);
      // The browser retries by itself unless the server refused (then the source is closed).
      if (source.readyState === EventSource.CLOSED) reconnectLater();
    };
    source.onmessage = receive;
  }

  function reconnectLater() {
    source.close();
    setTimeout(async () => {
      // A refused stream may mean a sign-out elsewhere: then go to the sign-in page.
      try {
        const me = await fetch("/api/me", { credentials: "same-origin" });
        if (me.status === 401) {
          location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
          return;
        }
      } catch {
        // offline: try the stream again anyway
      }
      connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  function receive(e) {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    const id = e.lastEventId ? Number(e.lastEventId) : null;
    if (msg.type === "resync") return startResync();
    if (held) held.push([msg, id]);
    else deliver(msg, id);
  }

  function deliver(msg, id) {
    if (id !== null) {
      if (id <= lastId) return; // already shown: the page or an earlier connection had it
      lastId = id;
    }
    on[msg.type]?.(msg.data || {}, msg, id);
  }

  async function startResync() {
    if (held) return;
    held = [];
    try {
      lastId = Math.max(lastId, await resync());
    } finally {
      const queue = held;
      held = null;
      queue.forEach(([msg, id]) => deliver(msg, id));
    }
  }

  connect();
}
