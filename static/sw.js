// sensorcast's service worker: shows the alarm notifications the server pushes (Web Push,
// encrypted per RFC 8291; the browser decrypts them before this runs) and opens the device page
// when one is clicked.
self.addEventListener("push", (event) => {
  let msg = { title: "sensorcast", body: "", url: "/" };
  try {
    msg = { ...msg, ...event.data.json() };
  } catch {
    // A push without a readable payload still says something happened.
  }
  event.waitUntil(
    self.registration.showNotification(msg.title, {
      body: msg.body,
      data: { url: msg.url },
      tag: msg.url,
      renotify: true,
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin);
  // Only our own pages: a pushed URL elsewhere opens the dashboard instead.
  const target = url.origin === self.location.origin ? url.href : self.location.origin + "/";
  event.waitUntil(
    self.clients.matchAll({ type: "window" }).then((windows) => {
      const open = windows.find((w) => w.url === target);
      return open ? open.focus() : self.clients.openWindow(target);
    }),
  );
});
