-- Quarter-hour summaries of the readings, per device, quantity and probe: kept when raw
-- readings are purged (--retention-days); reports and long charts read them. A quarter hour,
-- not an hour: every UTC offset in use is a multiple of 15 minutes (Asia/Kolkata +5:30,
-- Asia/Kathmandu +5:45), so every site's day is a whole number of buckets.
CREATE TABLE reading_summaries (
    device_id    BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    quantity     TEXT NOT NULL,
    probe        BIGINT NOT NULL,
    bucket_ms    BIGINT NOT NULL,
    min_value    DOUBLE PRECISION NOT NULL,
    max_value    DOUBLE PRECISION NOT NULL,
    sum_value    DOUBLE PRECISION NOT NULL,
    value_count  BIGINT NOT NULL,
    -- When the newest reading of the bucket arrived ("changed after review").
    received_ms  BIGINT NOT NULL,
    PRIMARY KEY (device_id, quantity, probe, bucket_ms)
);

-- The readings stored so far.
INSERT INTO reading_summaries (device_id, quantity, probe, bucket_ms, min_value, max_value,
    sum_value, value_count, received_ms)
SELECT device_id, 'temperature', 1, measured_ms - measured_ms % 900000, MIN(temperature), MAX(temperature), SUM(temperature),
    COUNT(temperature), MAX(received_ms)
FROM readings WHERE temperature IS NOT NULL GROUP BY device_id, measured_ms - measured_ms % 900000;
INSERT INTO reading_summaries (device_id, quantity, probe, bucket_ms, min_value, max_value,
    sum_value, value_count, received_ms)
SELECT device_id, 'temperature', 2, measured_ms - measured_ms % 900000, MIN(temperature2), MAX(temperature2), SUM(temperature2),
    COUNT(temperature2), MAX(received_ms)
FROM readings WHERE temperature2 IS NOT NULL GROUP BY device_id, measured_ms - measured_ms % 900000;
INSERT INTO reading_summaries (device_id, quantity, probe, bucket_ms, min_value, max_value,
    sum_value, value_count, received_ms)
SELECT device_id, 'humidity', 1, measured_ms - measured_ms % 900000, MIN(humidity), MAX(humidity), SUM(humidity),
    COUNT(humidity), MAX(received_ms)
FROM readings WHERE humidity IS NOT NULL GROUP BY device_id, measured_ms - measured_ms % 900000;
INSERT INTO reading_summaries (device_id, quantity, probe, bucket_ms, min_value, max_value,
    sum_value, value_count, received_ms)
SELECT device_id, 'humidity', 2, measured_ms - measured_ms % 900000, MIN(humidity2), MAX(humidity2), SUM(humidity2),
    COUNT(humidity2), MAX(received_ms)
FROM readings WHERE humidity2 IS NOT NULL GROUP BY device_id, measured_ms - measured_ms % 900000;

-- The purge deletes the oldest readings first.
CREATE INDEX readings_measured ON readings (measured_ms);
