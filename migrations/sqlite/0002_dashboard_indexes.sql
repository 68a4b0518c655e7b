-- Dashboards: alarms of the last days and today's reading count without scanning every reading.
CREATE INDEX readings_alarm_time ON readings (measured_ms) WHERE alarms IS NOT NULL;
CREATE INDEX readings_received ON readings (received_ms);
