-- The flood guard: a person gets at most N alarm notifications an hour per channel; the rest
-- are held ('folded') and go out together in one 'summary' notification, which records which
-- it carried (summary_id).
ALTER TABLE notifications DROP CONSTRAINT notifications_reason_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_reason_check
    CHECK (reason IN ('raised', 'escalated', 'test', 'summary'));
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'delivered', 'abandoned', 'folded'));
ALTER TABLE notifications ADD COLUMN summary_id BIGINT;
-- What the guard counts: a recipient's deliveries of the last hour.
CREATE INDEX notifications_recipient ON notifications (channel, recipient, delivered_ms);
-- One summary waiting per recipient and channel, whichever instance folds first.
CREATE UNIQUE INDEX notifications_one_summary ON notifications (channel, recipient)
    WHERE reason = 'summary' AND status = 'pending';
