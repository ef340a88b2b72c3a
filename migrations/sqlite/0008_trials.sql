-- Joining and trials (issue 15).
--
-- Trials: one per Discord member and per plex.tv account, ever. A grant names the
-- subscriber and the Plex identity the trial ran on; a later trial is refused for the same
-- subscriber, and for any identity that is the same plex.tv account (email, username or id), so
-- a new email on an old account gets no second trial.
CREATE TABLE trial_grant (
    id            INTEGER PRIMARY KEY,
    subscriber_id BIGINT NOT NULL REFERENCES subscriber (id) ON DELETE RESTRICT,
    identity_id   BIGINT NOT NULL REFERENCES plex_identity (id) ON DELETE RESTRICT,
    plan_id       BIGINT NOT NULL REFERENCES plan (id) ON DELETE RESTRICT,
    started_at    TEXT NOT NULL,
    ends_at       TEXT NOT NULL,
    -- When a payment turned the trial into a paid subscription.
    converted_at  TEXT,
    UNIQUE (subscriber_id),
    UNIQUE (identity_id)
);

-- A share being replaced (a trial converted to a paid plan moves to a server that takes paid
-- subscribers): it keeps its access until the share that replaces it is accepted on plex.tv, so
-- the subscriber is never without access; then it is removed.
ALTER TABLE share ADD COLUMN replaced_by BIGINT REFERENCES share (id) ON DELETE SET NULL;
CREATE INDEX share_replaced_by ON share (replaced_by) WHERE replaced_by IS NOT NULL;

-- A join or claim proven by Plex sign-in finishes in a job, after the member has left the
-- conversation: the name they joined under travels with the request.
ALTER TABLE proof_request ADD COLUMN member_name TEXT;
