// The connection to /api/realtime: one EventSource, reconnected with the last event id after an
// outage, each event handed to the handler of its `type` once (never one the page already shows).
// `resync` (the server skipped a replay too long to send) pauses delivery while the page reloads
// its data, then delivers only what that data did not have yet. tabs.js shares one connection
// among a user's tabs with the same two parts: `connect` and `receiver`.

/** Messages the server sends without an id. */
const CONTROL = /^\{"type":"(connected|keepalive)"/;
/** The server skipped a replay too long to send (the message carries the newest id). */
export const isResync = (data) => data.startsWith('{"type":"resync"');

/**
 * An EventSource on /api/realtime from event `from`, reopened after an outage from the last id
 * it received; a refused stream after a sign-out sends the tab to the sign-in page.
 * @param {object} o
 * @param {number} o.from     the id of the last event already had
 * @param {string} [o.devices] narrows the stream to these device ids (comma-separated)
 * @param {(data: string, id: number | null) => void} o.message  each message, as sent
 * @param {(open: boolean) => void} o.state  told when the stream opens or is lost
 */
export function connect({ from, devices, message, state }) {
  let lastId = from;
  let source = null;
  let retryMs = 1000;

  function open() {
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
    source.onmessage = (e) => {
      // `lastEventId` keeps the last id sent, so unnumbered messages (connected, keepalive)
      // would seem to carry it: they are told apart by their type.
      const numbered = e.lastEventId && !CONTROL.test(e.data);
      const id = numbered ? Number(e.lastEventId) : null;
      if (id !== null && Number.isSafeInteger(id)) lastId = Math.max(lastId, id);
      message(e.data, id);
    };
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
      open();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }

  open();
}

/**
 * What a page does with each message: parse it, drop what it already shows, hold events during
 * a resync, hand the rest to the handler of its type.
 * @param {object} o
 * @param {number} o.after   the id of the last event the page shows (rendered with it)
 * @param {Record<string, (data: object, msg: object, id: number) => void>} o.on  handlers by type
 * @param {() => Promise<number>} o.resync  reloads the page's data; resolves with its event id
 * @param {(msg: object) => boolean} [o.shows]  whether this page shows an event at all
 */
export function receiver({ after, on, resync, shows = () => true }) {
  let lastId = after;
  let held = null; // events that arrive while a resync reloads the page's data

  function deliver(msg, id) {
    if (id !== null) {
      if (id <= lastId) return; // already shown: the page or an earlier connection had it
      lastId = id;
      document.body.dataset.lastEventId = String(id); // where this page is now
    }
    if (shows(msg)) on[msg.type]?.(msg.data || {}, msg, id);
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

  return {
    /** The id of the last event this page has. */
    lastId: () => lastId,
    /** One message as the server sent it. */
    receive(data, id) {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      if (msg.type === "resync") return startResync();
      if (held) held.push([msg, id]);
      else deliver(msg, id);
    },
  };
}

/** A stream of this tab's own (the page's device filter applied by the server). */
export function openStream({ after, devices, on, resync, state }) {
  const page = receiver({ after, on, resync });
  connect({ from: after, devices, message: page.receive, state });
}
