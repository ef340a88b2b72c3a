-- My Account sign-in. A link is signed (purpose, subscriber, nonce, expiry) and also recorded
-- here, so it works once: signing in sets used_at, and a link whose row is used never signs in.
CREATE TABLE web_login_link (
    nonce         TEXT PRIMARY KEY NOT NULL,
    subscriber_id BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    used_at       TIMESTAMPTZ
);
CREATE INDEX web_login_link_subscriber ON web_login_link (subscriber_id, created_at);

-- Browser sessions. The cookie holds a random secret; only its keyed digest is stored, so a copy
-- of the database does not sign anyone in. The CSRF token is per session.
CREATE TABLE web_session (
    id_digest     TEXT PRIMARY KEY NOT NULL,
    subscriber_id BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ
);
CREATE INDEX web_session_subscriber ON web_session (subscriber_id);

-- A subscriber who should have a share but for whom no server had room: set when placement finds
-- nothing, cleared when a share is made. The hourly placement job retries exactly these.
ALTER TABLE subscriber ADD COLUMN waiting_for_room_since TIMESTAMPTZ;
