-- A site's time zone (IANA name; NULL: the server's --time-zone). Report days are its days.
ALTER TABLE sites ADD COLUMN time_zone TEXT;

-- A report period marked reviewed by a manager or admin (also in the audit trail).
CREATE TABLE report_reviews (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id      INTEGER NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    from_day     TEXT NOT NULL,
    to_day       TEXT NOT NULL,
    start_ms     INTEGER NOT NULL,
    end_ms       INTEGER NOT NULL,
    reviewed_by  TEXT NOT NULL,
    reviewed_ms  INTEGER NOT NULL
);
CREATE INDEX report_reviews_site ON report_reviews (site_id, start_ms);
