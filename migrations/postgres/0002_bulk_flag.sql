-- Bulk flag previews: the exact set an admin saw, so the confirm applies that set and no other.
CREATE TABLE bulk_flag_preview (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor        TEXT NOT NULL,
    filter       TEXT NOT NULL,
    members      INTEGER NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    confirmed_at TIMESTAMPTZ
);

CREATE TABLE bulk_flag_member (
    preview_id    BIGINT NOT NULL REFERENCES bulk_flag_preview (id) ON DELETE CASCADE,
    subscriber_id BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE CASCADE,
    PRIMARY KEY (preview_id, subscriber_id)
);
