-- A Plex identity is its plex.tv account (issue 13): identities carry the plex.tv id and username
-- Usher learns, and an account refused at invite time is kept as `refused`; a re-claimed server
-- can be added again (machine ids are unique among live servers only); shares record when plex.tv
-- got the invite and when it no longer holds the share; subscribers may be unclaimed (no Discord
-- member yet); proofs of a Plex account (an emailed code, or Plex sign-in) serve the account
-- change, joining and claiming alike.
--
-- SQLite cannot change a column's constraints in place, so the tables whose constraints change
-- are rebuilt (new table, copy, drop, rename). Usher runs SQLite migrations with foreign keys
-- off and checks every reference afterwards (store::Db::migrate), as SQLite's own procedure for
-- such changes asks. Keep in step with migrations/postgres/0007_plex_accounts.sql.

-- Subscribers: the Discord id is empty while an imported subscriber is unclaimed.
CREATE TABLE subscriber_new (
    id                     INTEGER PRIMARY KEY,
    discord_id             BIGINT UNIQUE,
    display_name           TEXT NOT NULL,
    contact_email          TEXT,
    plan_id                BIGINT REFERENCES plan (id) ON DELETE RESTRICT,
    requires_plex_change   BOOLEAN NOT NULL DEFAULT FALSE,
    flagged_at             TEXT,
    permanent              BOOLEAN NOT NULL DEFAULT FALSE,
    preferred_location     TEXT,
    notes                  TEXT NOT NULL DEFAULT '',
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    waiting_for_room_since TEXT,
    role_granted           BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO subscriber_new (id, discord_id, display_name, contact_email, plan_id, requires_plex_change,
    flagged_at, permanent, preferred_location, notes, created_at, updated_at, waiting_for_room_since,
    role_granted)
SELECT id, discord_id, display_name, contact_email, plan_id, requires_plex_change, flagged_at,
    permanent, preferred_location, notes, created_at, updated_at, waiting_for_room_since, role_granted
FROM subscriber;
DROP TABLE subscriber;
ALTER TABLE subscriber_new RENAME TO subscriber;
CREATE INDEX subscriber_flagged ON subscriber (requires_plex_change);

-- Plex identities: `refused` is an account plex.tv named as a retired or banned one when it was
-- invited (a banned account whose email was changed on plex.tv). The plex.tv id and username are
-- unique over every row ever, like the email: any of the three identifies the account.
CREATE TABLE plex_identity_new (
    id             INTEGER PRIMARY KEY,
    subscriber_id  BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    email_norm     TEXT NOT NULL UNIQUE,
    plex_user_id   BIGINT,
    plex_username  TEXT,
    state          TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired', 'banned', 'refused')),
    retire_reason  TEXT CHECK (retire_reason IN ('changed', 'banned', 'refused')),
    created_at     TEXT NOT NULL,
    retired_at     TEXT,
    CHECK ((state = 'active') = (retired_at IS NULL AND retire_reason IS NULL)),
    CHECK (email_norm = lower(trim(email_norm))),
    CHECK (plex_username IS NULL OR plex_username = lower(trim(plex_username)))
);
INSERT INTO plex_identity_new (id, subscriber_id, email_norm, plex_user_id, plex_username, state,
    retire_reason, created_at, retired_at)
SELECT id, subscriber_id, email_norm, plex_user_id, lower(trim(plex_username)), state, retire_reason,
    created_at, retired_at
FROM plex_identity;
DROP TABLE plex_identity;
ALTER TABLE plex_identity_new RENAME TO plex_identity;
CREATE UNIQUE INDEX plex_identity_one_active ON plex_identity (subscriber_id) WHERE state = 'active';
CREATE UNIQUE INDEX plex_identity_plex_user ON plex_identity (plex_user_id) WHERE plex_user_id IS NOT NULL;
CREATE UNIQUE INDEX plex_identity_username ON plex_identity (plex_username) WHERE plex_username IS NOT NULL;

CREATE TRIGGER plex_identity_never_reactivated
BEFORE UPDATE ON plex_identity
WHEN OLD.state <> 'active' AND NEW.state = 'active'
BEGIN
    SELECT RAISE(ABORT, 'a retired or banned Plex identity can never be active again');
END;

CREATE TRIGGER plex_identity_email_immutable
BEFORE UPDATE OF email_norm ON plex_identity
WHEN OLD.email_norm <> NEW.email_norm
BEGIN
    SELECT RAISE(ABORT, 'a Plex identity''s email never changes; retire it and link a new one');
END;

-- Servers: a server re-claimed by a new owner account keeps its machine identifier, so the
-- identifier is unique among live servers only; the old row stays with the old account
-- (retired_at set when its account is banned or removed, or the admin removes the server).
CREATE TABLE server_new (
    id                      INTEGER PRIMARY KEY,
    owner_account_id        BIGINT NOT NULL REFERENCES owner_account (id) ON DELETE RESTRICT,
    machine_id              TEXT NOT NULL,
    name                    TEXT NOT NULL,
    location                TEXT,
    url                     TEXT,
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    allow_new_subscriptions BOOLEAN NOT NULL DEFAULT TRUE,
    allow_trials            BOOLEAN NOT NULL DEFAULT FALSE,
    max_users               INTEGER NOT NULL DEFAULT 95 CHECK (max_users > 0),
    created_at              TEXT NOT NULL,
    retired_at              TEXT
);
INSERT INTO server_new (id, owner_account_id, machine_id, name, location, url, enabled,
    allow_new_subscriptions, allow_trials, max_users, created_at, retired_at)
SELECT s.id, s.owner_account_id, s.machine_id, s.name, s.location, s.url, s.enabled,
    s.allow_new_subscriptions, s.allow_trials, s.max_users, s.created_at,
    CASE WHEN o.state = 'active' THEN NULL ELSE COALESCE(o.removed_at, o.banned_at) END
FROM server s JOIN owner_account o ON o.id = s.owner_account_id;
DROP TABLE server;
ALTER TABLE server_new RENAME TO server;
CREATE UNIQUE INDEX server_machine_live ON server (machine_id) WHERE retired_at IS NULL;

-- Proofs of a Plex account: an emailed code (email_code) or Plex sign-in (plex_sign_in), for a
-- flagged subscriber's account change, a new member joining, or a member claiming an imported
-- subscriber. Codes are stored only as keyed hashes; a sign-in keeps the PIN's id, never a token.
CREATE TABLE proof_request (
    id              INTEGER PRIMARY KEY,
    purpose         TEXT NOT NULL CHECK (purpose IN ('change', 'join', 'claim')),
    -- change: the flagged subscriber; claim: the unclaimed subscriber; join: none yet.
    subscriber_id   BIGINT REFERENCES subscriber (id) ON DELETE RESTRICT,
    -- join and claim: the member proving the account.
    discord_id      BIGINT,
    method          TEXT NOT NULL CHECK (method IN ('email_code', 'plex_sign_in')),
    -- The account: the address the code went to, or the email plex.tv names after sign-in.
    email_norm      TEXT,
    contact_email   TEXT,
    code_hash       TEXT,
    pin_id          BIGINT,
    pin_code        TEXT,
    plex_user_id    BIGINT,
    plex_username   TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    sends           INTEGER NOT NULL DEFAULT 1,
    last_sent_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'expired', 'locked', 'cancelled', 'refused')),
    refusal         TEXT,
    created_at      TEXT NOT NULL,
    verified_at     TEXT,
    CHECK (subscriber_id IS NOT NULL OR discord_id IS NOT NULL),
    CHECK (method <> 'email_code' OR (email_norm IS NOT NULL AND code_hash IS NOT NULL)),
    CHECK (method <> 'plex_sign_in' OR pin_id IS NOT NULL)
);
INSERT INTO proof_request (id, purpose, subscriber_id, discord_id, method, email_norm, code_hash,
    failed_attempts, sends, last_sent_at, expires_at, state, created_at, verified_at)
SELECT r.id, 'change', r.subscriber_id, s.discord_id, 'email_code', r.new_email_norm, r.code_hash,
    r.failed_attempts, r.sends, r.last_sent_at, r.expires_at, r.state, r.created_at, r.verified_at
FROM account_change_request r JOIN subscriber s ON s.id = r.subscriber_id;
DROP TABLE account_change_request;
CREATE UNIQUE INDEX proof_one_pending_subscriber ON proof_request (purpose, subscriber_id)
    WHERE state = 'pending' AND subscriber_id IS NOT NULL;
CREATE UNIQUE INDEX proof_one_pending_member ON proof_request (purpose, discord_id)
    WHERE state = 'pending' AND discord_id IS NOT NULL;
CREATE INDEX proof_request_subscriber ON proof_request (subscriber_id, state);

-- Shares: when plex.tv answered the invite (only shares invited before a reconcile read plex.tv
-- can have vanished), and when plex.tv no longer holds the share (a share Usher stopped counting
-- may still be deleted on plex.tv by its job).
ALTER TABLE share ADD COLUMN invited_at TEXT;
ALTER TABLE share ADD COLUMN unshared_at TEXT;
UPDATE share SET invited_at = updated_at WHERE plex_share_id IS NOT NULL;
UPDATE share SET unshared_at = removed_at WHERE state = 'removed';
