-- Alarm rules: one per device, quantity and probe.
CREATE TABLE alarm_rules (
    device_id   INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    quantity    TEXT NOT NULL CHECK (quantity IN ('temperature', 'humidity')),
    probe       INTEGER NOT NULL CHECK (probe IN (1, 2)),
    min         REAL,
    max         REAL,
    delay_secs  INTEGER NOT NULL DEFAULT 0 CHECK (delay_secs BETWEEN 0 AND 86400),
    PRIMARY KEY (device_id, quantity, probe),
    CHECK (min IS NOT NULL OR max IS NOT NULL),
    CHECK (min IS NULL OR max IS NULL OR min < max)
);

-- A threshold excursion whose delay has not passed yet (not an alarm yet).
CREATE TABLE alarm_excursions (
    device_id   INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    quantity    TEXT NOT NULL,
    probe       INTEGER NOT NULL,
    started_ms  INTEGER NOT NULL,
    value       REAL NOT NULL,
    peak        REAL NOT NULL,
    PRIMARY KEY (device_id, quantity, probe)
);

-- Alarms. quantity '' and probe 0 when the alarm is not about one probe (offline).
CREATE TABLE alarms (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id        INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('threshold', 'device', 'offline', 'battery')),
    quantity         TEXT NOT NULL DEFAULT '',
    probe            INTEGER NOT NULL DEFAULT 0,
    min              REAL,
    max              REAL,
    value            REAL,
    peak             REAL,
    cause            TEXT,
    started_ms       INTEGER NOT NULL,
    raised_ms        INTEGER NOT NULL,
    active           INTEGER NOT NULL,
    ended_ms         INTEGER,
    acknowledged_by  TEXT,
    acknowledged_ms  INTEGER,
    comment          TEXT
);
-- At most one open alarm (active, or not acknowledged) per device, kind, quantity and probe.
CREATE UNIQUE INDEX alarms_one_open ON alarms (device_id, kind, quantity, probe)
    WHERE active = 1 OR acknowledged_ms IS NULL;
CREATE INDEX alarms_device ON alarms (device_id, started_ms);
CREATE INDEX alarms_started ON alarms (started_ms);

-- The audit trail: appended to, never changed (no code path issues UPDATE or DELETE on it).
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    before   TEXT,
    after    TEXT
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_action ON audit_log (action, at_ms);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be changed'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail cannot be changed'); END;
