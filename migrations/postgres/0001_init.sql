-- Usher schema v1 (PostgreSQL). Keep in step with migrations/sqlite/0001_init.sql: same tables,
-- same columns, same constraints. Timestamps are TIMESTAMPTZ, written by the
-- application clock (never SQL's own now()), so tests can move time.

CREATE TABLE setting (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE library_group (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    -- A group that is never shared with anyone (e.g. "Private").
    private    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE plan (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    price_minor     BIGINT NOT NULL CHECK (price_minor >= 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    period          TEXT NOT NULL,
    max_streams     INTEGER NOT NULL CHECK (max_streams > 0),
    trial           BOOLEAN NOT NULL DEFAULT FALSE,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    stripe_price_id TEXT,
    paypal_plan_id  TEXT,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE plan_group (
    plan_id  BIGINT NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES library_group (id) ON DELETE RESTRICT,
    PRIMARY KEY (plan_id, group_id)
);

CREATE TABLE owner_account (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL,
    plex_user_id  BIGINT,
    -- The Plex token, encrypted with the installation's key (AEAD); never stored in clear.
    token_enc     TEXT NOT NULL,
    plex_pass     BOOLEAN NOT NULL DEFAULT FALSE,
    state         TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'banned', 'removed')),
    created_at    TIMESTAMPTZ NOT NULL,
    banned_at     TIMESTAMPTZ,
    removed_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX owner_account_plex_user_live ON owner_account (plex_user_id)
    WHERE state = 'active' AND plex_user_id IS NOT NULL;

CREATE TABLE server (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_account_id        BIGINT NOT NULL REFERENCES owner_account (id) ON DELETE RESTRICT,
    machine_id              TEXT NOT NULL UNIQUE,
    name                    TEXT NOT NULL,
    location                TEXT,
    url                     TEXT,
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    allow_new_subscriptions BOOLEAN NOT NULL DEFAULT TRUE,
    allow_trials            BOOLEAN NOT NULL DEFAULT FALSE,
    max_users               INTEGER NOT NULL DEFAULT 95 CHECK (max_users > 0),
    created_at              TIMESTAMPTZ NOT NULL
);

CREATE TABLE library (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id  BIGINT NOT NULL REFERENCES server (id) ON DELETE CASCADE,
    -- plex.tv's global section id: the one shares are made with.
    section_id BIGINT NOT NULL,
    -- The server's own section key.
    local_key  TEXT NOT NULL,
    title      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    group_id   BIGINT REFERENCES library_group (id) ON DELETE SET NULL,
    UNIQUE (server_id, local_key),
    UNIQUE (server_id, section_id)
);

CREATE TABLE subscriber (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    discord_id           BIGINT NOT NULL UNIQUE,
    display_name         TEXT NOT NULL,
    contact_email        TEXT,
    plan_id              BIGINT REFERENCES plan (id) ON DELETE RESTRICT,
    requires_plex_change BOOLEAN NOT NULL DEFAULT FALSE,
    flagged_at           TIMESTAMPTZ,
    permanent            BOOLEAN NOT NULL DEFAULT FALSE,
    preferred_location   TEXT,
    notes                TEXT NOT NULL DEFAULT '',
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX subscriber_flagged ON subscriber (requires_plex_change);

-- Every Plex account ever linked. The normalised email is unique over ALL rows, whatever the
-- state: an identity that was retired or banned can never be linked to anyone again.
CREATE TABLE plex_identity (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id  BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    email_norm     TEXT NOT NULL UNIQUE,
    plex_user_id   BIGINT,
    plex_username  TEXT,
    state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired', 'banned')),
    retire_reason  TEXT CHECK (retire_reason IN ('changed', 'banned')),
    created_at     TIMESTAMPTZ NOT NULL,
    retired_at     TIMESTAMPTZ,
    CHECK ((state = 'active') = (retired_at IS NULL AND retire_reason IS NULL)),
    CHECK (email_norm = lower(trim(email_norm)))
);
CREATE UNIQUE INDEX plex_identity_one_active ON plex_identity (subscriber_id) WHERE state = 'active';
CREATE UNIQUE INDEX plex_identity_plex_user ON plex_identity (plex_user_id) WHERE plex_user_id IS NOT NULL;

CREATE FUNCTION plex_identity_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.state <> 'active' AND NEW.state = 'active' THEN
        RAISE EXCEPTION 'a retired or banned Plex identity can never be active again';
    END IF;
    IF OLD.email_norm <> NEW.email_norm THEN
        RAISE EXCEPTION 'a Plex identity''s email never changes; retire it and link a new one';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER plex_identity_guard BEFORE UPDATE ON plex_identity
    FOR EACH ROW EXECUTE FUNCTION plex_identity_guard();

CREATE TABLE share (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id    BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    server_id        BIGINT NOT NULL REFERENCES server (id) ON DELETE RESTRICT,
    plex_identity_id BIGINT NOT NULL REFERENCES plex_identity (id) ON DELETE RESTRICT,
    -- plex.tv's shared-server id, known once the invite went out.
    plex_share_id    BIGINT,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'accepted', 'removed')),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    removed_at       TIMESTAMPTZ
);
CREATE UNIQUE INDEX share_one_live ON share (subscriber_id, server_id) WHERE state <> 'removed';
CREATE INDEX share_server_state ON share (server_id, state);

CREATE TABLE payment (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL while unmatched: the admins assign it.
    subscriber_id    BIGINT REFERENCES subscriber (id) ON DELETE RESTRICT,
    plan_id          BIGINT REFERENCES plan (id) ON DELETE RESTRICT,
    provider         TEXT NOT NULL CHECK (provider IN ('stripe', 'paypal', 'plisio', 'manual')),
    provider_txn_id  TEXT NOT NULL,
    amount_minor     BIGINT NOT NULL,
    currency         TEXT NOT NULL CHECK (length(currency) = 3),
    payer_email      TEXT,
    -- The paid interval [paid_from, paid_to); NULL until matched to a subscriber.
    paid_from        TIMESTAMPTZ,
    paid_to          TIMESTAMPTZ,
    status           TEXT NOT NULL CHECK (status IN ('unmatched', 'applied', 'refunded')),
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, provider_txn_id),
    CHECK (paid_from IS NULL OR paid_to > paid_from)
);
CREATE INDEX payment_subscriber ON payment (subscriber_id, paid_to);

CREATE TABLE account_change_request (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id   BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    new_email_norm  TEXT NOT NULL,
    -- HMAC of the code under the installation key; the code itself is never stored.
    code_hash       TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    sends           INTEGER NOT NULL DEFAULT 1,
    last_sent_at    TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'expired', 'locked', 'cancelled')),
    created_at      TIMESTAMPTZ NOT NULL,
    verified_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX account_change_one_pending ON account_change_request (subscriber_id) WHERE state = 'pending';

CREATE TABLE webhook_event (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    processed_at TIMESTAMPTZ,
    UNIQUE (provider, event_id)
);

CREATE TABLE job (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- Unique: enqueueing the same logical job twice is a no-op.
    idempotency_key TEXT NOT NULL UNIQUE,
    -- Jobs sharing a rate key share a rate limit (e.g. one owner Plex account).
    rate_key        TEXT,
    state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead', 'parked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    -- When it is due. While running, the lease expiry: a job whose worker died is due again then.
    run_at          TIMESTAMPTZ NOT NULL,
    -- Set while running: the claim that holds the lease.
    lease_token     TEXT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
-- Only live jobs are indexed, so claims stay fast however many finished jobs accumulate.
CREATE INDEX job_due ON job (run_at, id) WHERE state IN ('queued', 'running');

CREATE TABLE audit_log (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            TIMESTAMPTZ NOT NULL,
    -- Who did it: `discord:<id>`, `web:<subscriber id>`, `webhook:<provider>`, `system`.
    actor         TEXT NOT NULL,
    subscriber_id BIGINT REFERENCES subscriber (id) ON DELETE RESTRICT,
    action        TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_subscriber ON audit_log (subscriber_id, at);
