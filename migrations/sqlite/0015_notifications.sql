-- Notifications: an outbox written in the transaction of the alarm change that causes it,
-- sent at least once from here by a dispatcher (retried with backoff for 24 h).

-- A user's email alerts: NULL follows the role (on for admins and managers, off for employees).
ALTER TABLE users ADD COLUMN email_alerts INTEGER;

-- When the alarm was escalated (notified again because nobody acknowledged it in time).
ALTER TABLE alarms ADD COLUMN escalated_ms INTEGER;

-- Outgoing webhooks, per site.
CREATE TABLE webhook_endpoints (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id     INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_site ON webhook_endpoints (site_id);

-- Browsers that opted in to Web Push, per user (removed when the push service says 404/410).
CREATE TABLE push_subscriptions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint    TEXT NOT NULL UNIQUE,
    p256dh      TEXT NOT NULL,
    auth        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id         INTEGER REFERENCES alarms(id) ON DELETE CASCADE,
    reason           TEXT NOT NULL CHECK (reason IN ('raised', 'escalated', 'test')),
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'webhook', 'push')),
    recipient        TEXT NOT NULL,
    -- The webhook endpoint or push subscription it goes to (gone: the send is abandoned).
    endpoint_id      INTEGER,
    -- The same on every attempt, so a receiver can de-duplicate.
    delivery_id      TEXT NOT NULL UNIQUE,
    -- The alarm event's JSON (the webhook body; the email is written from it).
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'abandoned')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    claimed_until_ms INTEGER,
    last_result      TEXT,
    created_ms       INTEGER NOT NULL,
    delivered_ms     INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_ms);
CREATE INDEX notifications_created ON notifications (created_ms);

-- Every attempt, with what came back.
CREATE TABLE notification_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id  INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    at_ms            INTEGER NOT NULL,
    ok               INTEGER NOT NULL,
    result           TEXT NOT NULL
);
CREATE INDEX notification_attempts_of ON notification_attempts (notification_id);
