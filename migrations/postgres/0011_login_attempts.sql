-- Sign-in attempts of the last 15 minutes, shared by every instance: one row per password
-- checked (a refused attempt adds none), forgiven per address and account on success, purged
-- by housekeeping once out of the window.
CREATE TABLE login_attempts (
    id     BIGSERIAL PRIMARY KEY,
    ip     TEXT NOT NULL,
    email  TEXT NOT NULL,
    at_ms  BIGINT NOT NULL
);
CREATE INDEX login_attempts_ip ON login_attempts (ip, at_ms);
CREATE INDEX login_attempts_email ON login_attempts (email, at_ms);
CREATE INDEX login_attempts_at ON login_attempts (at_ms);
