-- The unit a user reads temperatures in on pages, reports, CSV and emails ('C' or 'F'); the
-- JSON API and the event stream stay in °C.
ALTER TABLE users ADD COLUMN temperature_unit TEXT NOT NULL DEFAULT 'C'
    CHECK (temperature_unit IN ('C', 'F'));
