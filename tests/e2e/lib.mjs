// Helpers of the browser tests: find Chromium and playwright-core, build and run the real
// sensorcast binary on a free port with a temporary SQLite database, sign webhooks.
import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before } from "node:test";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const SCREENSHOTS = join(ROOT, "tests/e2e/screenshots");
export const SECRET = "e2e-webhook-secret";
export const WEBHOOK_UUID = "6167cb40-8e5e-4d53-904f-968928e488a6";
export const ADMIN = { email: "admin@e2e.test", password: "admin password e2e" };
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** What the browser tests need, and what is missing. */
export async function probe() {
  const chromium = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"]
    .find((p) => p && existsSync(p));
  let playwright = null;
  try {
    playwright = await import("playwright-core");
  } catch {
    playwright = null;
  }
  const missing = [];
  if (!chromium) missing.push("chromium (apt-get install -y chromium)");
  if (!playwright) missing.push("tests/e2e/node_modules (npm ci --prefix tests/e2e)");
  return { chromium, playwright, missing };
}

/**
 * What a browser test file needs, probed once: `skip` is true (and said loudly) when Chromium or
 * playwright-core is missing; with SENSORCAST_REQUIRE_E2E=1 that is a failure instead.
 */
export async function browserTests(what) {
  const env = await probe();
  if (env.missing.length) {
    const why = `SKIPPED: e2e ${what} (no chromium) — missing ${env.missing.join(" and ")}`;
    if (process.env.SENSORCAST_REQUIRE_E2E === "1") {
      throw new Error(`${why}; SENSORCAST_REQUIRE_E2E=1 makes this a failure`);
    }
    console.error(`\n*** ${why} ***\n`);
  }
  return { ...env, skip: env.missing.length > 0 };
}

/**
 * One server and one Chromium for a test file: started before its tests (then `setUp`), closed
 * after them (`tearDown` first). The returned object holds them as `server` and `browser`.
 */
export function serverAndBrowser(env, { setUp, tearDown } = {}) {
  const rig = { server: undefined, browser: undefined };
  before(async () => {
    if (env.skip) return;
    rig.server = new Server(binary(), await freePort());
    await rig.server.start();
    rig.browser = await launch(env);
    await setUp?.(rig);
  });
  after(async () => {
    await tearDown?.(rig);
    await rig.browser?.close();
    await rig.server?.dispose();
  });
  return rig;
}

/** Chromium, launched headless. */
export function launch(env) {
  return env.playwright.chromium.launch({ executablePath: env.chromium, args: CHROMIUM_ARGS });
}

/** The sensorcast binary: $SENSORCAST_BIN, else `cargo build` (a no-op when up to date). */
export function binary() {
  if (process.env.SENSORCAST_BIN) return process.env.SENSORCAST_BIN;
  const out = spawnSync("cargo", ["build", "--bin", "sensorcast", "--message-format=json"], {
    cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"],
  });
  if (out.status !== 0) throw new Error("cargo build failed");
  for (const line of out.stdout.split("\n").reverse()) {
    if (!line.startsWith("{")) continue;
    const msg = JSON.parse(line);
    if (msg.reason === "compiler-artifact" && msg.executable) return msg.executable;
  }
  throw new Error("cargo build did not name the sensorcast executable");
}

export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** A sensorcast server with its own temporary database; `restart()` keeps port and data. */
export class Server {
  constructor(bin, port) {
    this.bin = bin;
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), "sensorcast-e2e-"));
    // "localhost": browsers keep Secure cookies on http://localhost (the default cookie setting).
    this.base = `http://localhost:${port}`;
    this.log = [];
  }

  async start() {
    this.proc = spawn(this.bin, [
      "--listen", `127.0.0.1:${this.port}`,
      "--database-url", `sqlite://${join(this.dir, "e2e.db")}`,
      "--webhook-secret", SECRET,
      "--admin-email", ADMIN.email,
      "--admin-password", ADMIN.password,
      "--keepalive-secs", "5",
    ], { env: { ...process.env, RUST_LOG: "warn" }, stdio: ["ignore", "pipe", "pipe"] });
    const keep = (chunk) => this.log.push(String(chunk));
    this.proc.stdout.on("data", keep);
    this.proc.stderr.on("data", keep);
    this.exited = new Promise((ok) => this.proc.once("exit", ok));
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(`http://127.0.0.1:${this.port}/healthz`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      if (this.proc.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`sensorcast did not start:\n${this.log.join("")}`);
  }

  /** SIGTERM, as an operator would; waits until the process is gone. */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    const done = await Promise.race([this.exited.then(() => true), sleep(10000).then(() => false)]);
    if (!done) {
      this.proc.kill("SIGKILL");
      await this.exited;
    }
  }

  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Posts one MDP DEVICE_DATA event, signed like the Milesight Development Platform does. */
  async postReading({ event, id, eui, name, t1, t2, humidity, battery = 90, alarm, ts = Date.now() }) {
    const payload = { temperature_left: t1, temperature_right: t2, battery };
    if (humidity !== undefined) payload.humidity = humidity;
    if (alarm) payload.temperature_chn1_alarm = alarm;
    const body = JSON.stringify({
      eventId: event, eventCreatedTime: Math.floor(ts / 1000), eventVersion: "1.0", eventType: "DEVICE_DATA",
      data: {
        deviceProfile: { deviceId: id, devEUI: eui, name, model: "TS302" },
        type: "PROPERTY", tslId: "", ts, payload,
      },
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const nonce = randomBytes(16).toString("hex");
    const signature = createHmac("sha256", SECRET).update(timestamp + nonce).digest("hex");
    const r = await fetch(`${this.base}/api/webhooks/milesight`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-msc-request-signature": signature,
        "x-msc-request-timestamp": timestamp,
        "x-msc-request-nonce": nonce,
        "x-msc-webhook-uuid": WEBHOOK_UUID,
      },
      body,
    });
    if (r.status !== 200) throw new Error(`webhook refused: ${r.status} ${await r.text()}`);
  }
}

/** The page's anti-forgery token and a JSON request with it, from inside the page. */
export function api(page, method, path, body) {
  return page.evaluate(async ([m, p, b]) => {
    const token = document.querySelector('meta[name="csrf-token"]').content;
    const r = await fetch(p, {
      method: m,
      headers: { "content-type": "application/json", "x-csrf-token": token },
      body: b === undefined ? undefined : JSON.stringify(b),
    });
    return { status: r.status, json: await r.json() };
  }, [method, path, body]);
}

/** Signs in through the form; resolves on the user's dashboard. */
export async function signIn(page, base, { email, password }, dashboard) {
  await page.goto(`${base}/login`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await Promise.all([page.waitForURL(`**${dashboard}`), page.click("button[type=submit]")]);
}

/** Resolves once the live indicator reads `text`. */
export async function liveIs(page, text, timeout = 5000) {
  await page.waitForFunction((t) => {
    const el = document.getElementById("live");
    return el && !el.hidden && el.textContent === t;
  }, text, { timeout });
}

/**
 * The structure of the element at `selector`, as a template fixes it: tags, classes, slots and
 * what is hidden, without the texts a reading fills in (nor chart drawings, nor animations).
 */
export async function shapeOf(page, selector) {
  const shape = await page.evaluate((sel) => {
    const passing = new Set(["flash", "fresh", "bump"]);
    const shape = (e) => ({
      tag: e.tagName.toLowerCase(),
      class: [...e.classList].filter((c) => !passing.has(c)).sort().join(" "),
      slot: e.dataset.slot ?? null,
      wrap: e.dataset.wrap ?? null,
      hidden: e.hidden,
      children: e.matches("[data-chart]") ? [] : [...e.children].map(shape),
    });
    const el = document.querySelector(sel);
    return el && shape(el);
  }, selector);
  if (!shape) throw new Error(`nothing on the page matches ${selector}`);
  return shape;
}

/** The texts of the slots in the element at `selector`, by slot name. */
export function slotTexts(page, selector) {
  return page.evaluate((sel) => {
    const out = {};
    for (const s of document.querySelector(sel).querySelectorAll("[data-slot]")) {
      out[s.dataset.slot] = s.textContent;
    }
    return out;
  }, selector);
}
