-- Every message Usher sends a person (DM, email) or the admins (alert channel), and how it went.
-- The recovery board reads delivery from here ("notified", "DM failed"); the job that delivers a
-- row is keyed by the row, so a notification is sent at most once.
CREATE TABLE notification (
    id            INTEGER PRIMARY KEY,
    -- NULL for admin alerts.
    subscriber_id BIGINT REFERENCES subscriber (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('dm', 'email', 'admin')),
    -- Where an email goes (the address is fixed when the notification is made).
    email_to      TEXT,
    -- What the template needs (never a secret).
    detail        TEXT NOT NULL DEFAULT '{}',
    -- One notification per logical event and channel.
    dedupe_key    TEXT NOT NULL UNIQUE,
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'sent', 'dm_closed', 'undeliverable', 'failed')),
    -- How it finally went out: 'dm', 'email', 'fallback_channel', 'admin_channel'.
    delivered_via TEXT,
    error         TEXT,
    created_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX notification_subscriber ON notification (subscriber_id, kind, id);
