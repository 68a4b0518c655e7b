-- Secrets the instances share, made by whichever starts first (the sign-in form's
-- anti-forgery key).
CREATE TABLE server_keys (
    name        TEXT PRIMARY KEY,
    secret      BLOB NOT NULL,
    created_ms  INTEGER NOT NULL
);
