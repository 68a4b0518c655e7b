// One stream per browser, not per tab: the tab holding the Web Lock of this user's stream (the
// leader) keeps the only EventSource and passes every message to the user's other tabs over a
// BroadcastChannel; when it closes, the lock passes to another tab, which reconnects from the
// last id it has (the server replays the gap). A tab that opens late asks the leader for what it
// missed since its page was rendered, from a ring of recent messages. Each tab filters what it
// shows (a device page, its device). Without Web Locks or BroadcastChannel: a stream per tab.

import { connect, isResync, openStream, receiver } from "./stream.js";

/** Messages the leader keeps for tabs that open late. */
const RING = 500;
/** How long a new tab waits for the leader's answer before asking again. */
const ASK_AGAIN_MS = 2000;

/**
 * @param {object} o  as `openStream`, plus
 * @param {string} o.user  the signed-in user's id (tabs of one user share a stream)
 */
export function openSharedStream(o) {
  if (!o.user || !navigator.locks || typeof BroadcastChannel !== "function") {
    document.body.dataset.stream = "own";
    return openStream(o);
  }
  const name = `sensorcast-stream-${o.user}`;
  const channel = new BroadcastChannel(name);
  const me = Math.random().toString(36).slice(2);
  const only = o.devices ? new Set(o.devices.split(",")) : null;
  const page = receiver({
    after: o.after,
    on: o.on,
    resync: o.resync,
    shows: (msg) => !only || !msg.data?.deviceId || only.has(msg.data.deviceId),
  });

  let leader = false;
  let open = false;
  /** The leader's recent messages, complete after `ringFrom`. */
  let ring = [];
  let ringFrom = Infinity;
  /** A follower's messages until the leader has answered what it missed (then `null`). */
  let waiting = [];
  let askTimer = null;

  function setRole(role) {
    document.body.dataset.stream = role;
  }

  function ask() {
    channel.postMessage({ kind: "hello", from: me, after: page.lastId() });
    clearTimeout(askTimer);
    askTimer = setTimeout(() => waiting && !leader && ask(), ASK_AGAIN_MS);
  }

  function answered(reply) {
    clearTimeout(askTimer);
    const queue = waiting || [];
    waiting = null;
    if (reply.resync) page.receive(JSON.stringify({ type: "resync" }), null);
    for (const [data, id] of reply.messages) page.receive(data, id);
    for (const [data, id] of queue) page.receive(data, id);
    if (reply.open !== open) o.state((open = reply.open));
  }

  channel.onmessage = ({ data: m }) => {
    if (m.kind === "message" && !leader) {
      if (waiting) waiting.push([m.data, m.id]);
      else page.receive(m.data, m.id);
    } else if (m.kind === "state" && !leader) {
      o.state((open = m.open));
    } else if (m.kind === "hello" && leader) {
      // What the ring holds after the asker's id, or a resync when it does not reach back.
      const reaches = m.after >= ringFrom;
      const messages = reaches ? ring.filter(([, id]) => id > m.after) : [];
      channel.postMessage({ kind: "reply", to: m.from, open, resync: !reaches, messages });
    } else if (m.kind === "reply" && m.to === me && waiting && !leader) {
      answered(m);
    } else if (m.kind === "leader" && !leader && !waiting) {
      // A new leader's ring starts where it took over: say what this tab has.
      waiting = [];
      ask();
    }
  };

  function lead() {
    leader = true;
    clearTimeout(askTimer);
    // Whatever came over the channel before is in the replay the new stream starts with.
    waiting = null;
    setRole("leader");
    ringFrom = page.lastId();
    channel.postMessage({ kind: "leader" });
    connect({
      from: page.lastId(),
      message(data, id) {
        if (isResync(data)) {
          // The server skipped events: the ring is complete only from here.
          ring = [];
          ringFrom = id ?? ringFrom;
        } else if (id !== null) {
          ring.push([data, id]);
          if (ring.length > RING) ringFrom = ring.shift()[1];
        }
        channel.postMessage({ kind: "message", data, id });
        page.receive(data, id);
      },
      state(isOpen) {
        open = isOpen;
        channel.postMessage({ kind: "state", open: isOpen });
        o.state(isOpen);
      },
    });
    // Held until the tab closes: the lock then passes to the next tab.
    return new Promise(() => {});
  }

  setRole("follower");
  ask();
  navigator.locks.request(name, lead);
}
