-- Sites group devices; managers and employees see the devices of their sites.
CREATE TABLE sites (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'employee')),
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_ms     INTEGER NOT NULL
);

CREATE TABLE user_sites (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    site_id  INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, site_id)
);

-- One row per physical device, whichever path (MDP or gateway) it came through.
CREATE TABLE devices (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dev_eui             TEXT UNIQUE,
    milesight_id        TEXT UNIQUE,
    name                TEXT NOT NULL,
    model               TEXT NOT NULL DEFAULT '',
    site_id             INTEGER REFERENCES sites(id) ON DELETE SET NULL,
    status              TEXT NOT NULL DEFAULT 'ONLINE',
    last_seen_ms        INTEGER,
    report_interval_s   INTEGER,
    ts302_variant       TEXT,
    created_ms          INTEGER NOT NULL,
    CHECK (dev_eui IS NOT NULL OR milesight_id IS NOT NULL)
);

CREATE TABLE readings (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id      INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    dedup_key      TEXT NOT NULL UNIQUE,
    source         TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    historical     INTEGER NOT NULL DEFAULT 0,
    measured_ms    INTEGER NOT NULL,
    received_ms    INTEGER NOT NULL,
    temperature    REAL,
    temperature2   REAL,
    humidity       REAL,
    humidity2      REAL,
    battery        INTEGER,
    alarms         TEXT,
    raw            TEXT NOT NULL
);
CREATE INDEX readings_device_time ON readings (device_id, measured_ms DESC);

-- The event log: its id is the SSE id; live delivery and replay read the same rows.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    device_id   INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    created_ms  INTEGER NOT NULL,
    json        TEXT NOT NULL
);
CREATE INDEX events_device ON events (device_id, id);

-- Every accepted MDP/gateway delivery key, for exactly-once ingestion and webhook health.
CREATE TABLE deliveries (
    dedup_key    TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    received_ms  INTEGER NOT NULL,
    detail       TEXT
);
CREATE INDEX deliveries_received ON deliveries (received_ms);

-- Signed-header replay protection: a (uuid, nonce) pair is accepted once.
CREATE TABLE webhook_nonces (
    webhook_uuid  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    seen_ms       INTEGER NOT NULL,
    PRIMARY KEY (webhook_uuid, nonce)
);
CREATE INDEX webhook_nonces_seen ON webhook_nonces (seen_ms);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     INTEGER,
    data        BLOB NOT NULL,
    expiry_ms   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expiry_ms);
