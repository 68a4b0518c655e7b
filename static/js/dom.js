// The page's markup comes from the server only: live items are clones of the <template>
// elements it renders from the same partials as the page itself, and the script only fills
// their named slots (data-slot) with text. Nothing here parses a string as HTML.

import { ago, fullTime, moment } from "./format.js";

/** A fresh copy of the first element of <template id=...>, or null if the page has none. */
export function clone(id) {
  const tpl = document.getElementById(id);
  return tpl ? tpl.content.firstElementChild.cloneNode(true) : null;
}

/** The elements of `root` (itself included) that hold slot `name`. */
export function slots(root, name) {
  const found = [...root.querySelectorAll(`[data-slot="${name}"]`)];
  if (root.matches?.(`[data-slot="${name}"]`)) found.unshift(root);
  return found;
}

/** Sets the text of every slot named in `values`; undefined values leave a slot as it is. */
export function fill(root, values) {
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    for (const s of slots(root, name)) s.textContent = value;
  }
  return root;
}

/** Shows or hides the slots named `name`. */
export function show(root, name, visible) {
  for (const s of slots(root, name)) s.hidden = !visible;
}

/** Puts moment `ms` into each slot `name`: the <time> it holds, or one from the time template. */
export function setTime(root, name, ms) {
  for (const s of slots(root, name)) {
    let t = s.querySelector("time");
    if (!t) {
      t = clone("tpl-time");
      s.replaceChildren(t);
    }
    t.dataset.ts = String(ms);
    t.dateTime = new Date(ms).toISOString();
    localizeTime(t);
  }
}

function localizeTime(t) {
  const ms = Number(t.dataset.ts);
  t.title = fullTime(ms);
  t.textContent = t.closest("[data-slot='updated']") ? ago(ms) : moment(ms);
}

/** Server-rendered times are UTC: show them in the browser's zone ("Updated" ones relative). */
export function localizeTimes(root = document) {
  root.querySelectorAll("time[data-ts]").forEach(localizeTime);
}

/** The elements that show device `id` (cards, rows, the device page). */
export const deviceViews = (id) => document.querySelectorAll(`[data-device="${CSS.escape(id)}"]`);

/** The link to a device's page. */
export const devicePath = (id) => `/devices/${encodeURIComponent(id)}`;

/** Points the device links of `root` (slot "name" on an <a>) at device `id`. */
export function linkDevice(root, id) {
  for (const a of slots(root, "name")) if (a instanceof HTMLAnchorElement) a.href = devicePath(id);
}

/** Restarts a short CSS animation on `node`. */
export function flash(node, cls) {
  node.classList.remove(cls);
  void node.offsetWidth; // a reflow, so that adding the class again restarts it
  node.classList.add(cls);
  setTimeout(() => node.classList.remove(cls), 1300);
}

/** Adds `item` at the top of `list` and keeps at most `max` items. */
export function prepend(list, item, max) {
  list.prepend(item);
  while (list.children.length > max) list.lastElementChild.remove();
}

/** The JSON of <script type="application/json" id=...>, or null. */
export function readJson(id) {
  const el = document.getElementById(id);
  if (!el) return null;
  try {
    return JSON.parse(el.textContent);
  } catch {
    return null;
  }
}
