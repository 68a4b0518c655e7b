// Opt-in to alarm notifications in this browser (Web Push). The button exists only where the
// browser supports service workers and push; the server keeps the subscription per user.
const button = document.getElementById("push-optin");
const status = document.getElementById("push-status");
const csrf = document.querySelector('input[name="csrf"]')?.value ?? "";

function say(text) {
  if (status) status.textContent = text;
}

function keyBytes(b64) {
  const s = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

async function subscribe() {
  const registration = await navigator.serviceWorker.register("/static/sw.js");
  const { publicKey } = await (await fetch("/api/push/key")).json();
  const subscription = await registration.pushManager.subscribe({
    userVisibleOnly: true,
    applicationServerKey: keyBytes(publicKey),
  });
  const r = await fetch("/api/push/subscriptions", {
    method: "POST",
    headers: { "content-type": "application/json", "x-csrf-token": csrf },
    body: JSON.stringify(subscription.toJSON()),
  });
  if (!r.ok) throw new Error((await r.json()).message ?? r.statusText);
}

if (button && "serviceWorker" in navigator && "PushManager" in window) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      if ((await Notification.requestPermission()) !== "granted") {
        say("Notifications are blocked for this site in the browser's settings.");
        return;
      }
      await subscribe();
      say("This browser will show alarm notifications.");
    } catch (e) {
      say(`Could not turn on notifications: ${e.message}`);
    } finally {
      button.disabled = false;
    }
  });
} else if (status && button) {
  say("This browser cannot receive push notifications.");
}
