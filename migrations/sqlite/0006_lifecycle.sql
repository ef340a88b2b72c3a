-- The everyday lifecycle: access removed when the paid time ends, the share deleted N days later.
--
-- plex.tv has no "share without libraries" (an empty library list means ALL libraries), so
-- removing library access deletes the shared server on plex.tv; the share row stays, holding the
-- subscriber's place on that server, with suspended_at set. A renewal within the grace days
-- invites them again to the same server; after it, the row is marked removed and the place freed.
ALTER TABLE share ADD COLUMN suspended_at TEXT;
CREATE INDEX share_suspended ON share (suspended_at) WHERE suspended_at IS NOT NULL;

-- Whether Usher last gave (true) or took (false) the configured Discord subscriber roles, so the
-- hourly sweep only calls Discord for subscribers whose state changed.
ALTER TABLE subscriber ADD COLUMN role_granted BOOLEAN NOT NULL DEFAULT FALSE;

-- Paid intervals by end, for the hourly sweep (lapsed subscribers, reminders).
CREATE INDEX payment_applied_end ON payment (paid_to) WHERE status = 'applied';
