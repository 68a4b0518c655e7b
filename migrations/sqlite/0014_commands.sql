-- Device commands (issue 17): one row per command a person asked for, from its request to
-- its end (confirmed, failed or expired). Status changes go through the writer, with their
-- `command_status` event in the same transaction.
CREATE TABLE commands (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id        INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    -- The command's name (`set_report_interval`, ...) and its whole JSON as requested.
    command          TEXT NOT NULL,
    body             TEXT NOT NULL,
    -- The fPort-85 bytes sent, lower-case hex.
    downlink_hex     TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'sent', 'confirmed', 'failed', 'expired')),
    requested_by     TEXT NOT NULL,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    -- Delivery to the gateway: tries so far, the earliest time of the next, and the lease of
    -- the instance trying it now (so two instances never send one command).
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms  INTEGER NOT NULL,
    claimed_until_ms INTEGER,
    -- Why it failed (the gateway's answer), or the last retried error; bounded.
    error            TEXT CHECK (error IS NULL OR length(error) <= 500)
);
CREATE INDEX commands_device ON commands (device_id, id);
CREATE INDEX commands_open ON commands (status, next_attempt_ms)
    WHERE status IN ('pending', 'sent');
