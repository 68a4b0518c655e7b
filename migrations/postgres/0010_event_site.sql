-- An event belongs to the site its device was in when it was stored, so live delivery and
-- replay (on every instance) scope it the same way.
ALTER TABLE events ADD COLUMN site_id BIGINT REFERENCES sites(id) ON DELETE SET NULL;
UPDATE events SET site_id = (SELECT site_id FROM devices WHERE devices.id = events.device_id);
CREATE INDEX events_site ON events (site_id, id);
