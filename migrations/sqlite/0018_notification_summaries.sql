-- The flood guard: a person gets at most N alarm notifications an hour per channel; the rest
-- are held ('folded') and go out together in one 'summary' notification, which records which
-- it carried (summary_id). SQLite cannot change a CHECK in place, so the table is rebuilt. The
-- migration runs in a transaction, where foreign keys cannot be turned off; dropping the old
-- table would then cascade to its attempts, so those are set aside and put back first.
CREATE TABLE attempts_kept AS SELECT * FROM notification_attempts;
DROP TABLE notification_attempts;
CREATE TABLE notifications_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id         INTEGER REFERENCES alarms(id) ON DELETE CASCADE,
    reason           TEXT NOT NULL CHECK (reason IN ('raised', 'escalated', 'test', 'summary')),
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'webhook', 'push')),
    recipient        TEXT NOT NULL,
    endpoint_id      INTEGER,
    delivery_id      TEXT NOT NULL UNIQUE,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'abandoned', 'folded')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    claimed_until_ms INTEGER,
    last_result      TEXT,
    created_ms       INTEGER NOT NULL,
    delivered_ms     INTEGER,
    summary_id       INTEGER
);
INSERT INTO notifications_new (id, alarm_id, reason, channel, recipient, endpoint_id, delivery_id,
    payload, status, attempts, next_attempt_ms, claimed_until_ms, last_result, created_ms, delivered_ms)
SELECT id, alarm_id, reason, channel, recipient, endpoint_id, delivery_id, payload, status, attempts,
    next_attempt_ms, claimed_until_ms, last_result, created_ms, delivered_ms FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_due ON notifications (status, next_attempt_ms);
CREATE INDEX notifications_created ON notifications (created_ms);
-- What the guard counts: a recipient's deliveries of the last hour.
CREATE INDEX notifications_recipient ON notifications (channel, recipient, delivered_ms);
-- One summary waiting per recipient and channel, whichever instance folds first.
CREATE UNIQUE INDEX notifications_one_summary ON notifications (channel, recipient)
    WHERE reason = 'summary' AND status = 'pending';
CREATE TABLE notification_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id  INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    at_ms            INTEGER NOT NULL,
    ok               INTEGER NOT NULL,
    result           TEXT NOT NULL
);
INSERT INTO notification_attempts (id, notification_id, at_ms, ok, result)
SELECT id, notification_id, at_ms, ok, result FROM attempts_kept;
DROP TABLE attempts_kept;
CREATE INDEX notification_attempts_of ON notification_attempts (notification_id);
