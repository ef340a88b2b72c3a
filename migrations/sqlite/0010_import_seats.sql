-- Adopting an existing server (issue 14): imports from plex.tv (and CSV) previewed, then
-- confirmed; the seats plex.tv counts on each owner account.

-- An import: what the preview showed, kept so the confirm applies exactly that and nothing else.
-- plan is the previewed work as JSON (people, their shares, plans and standing). At most one
-- import runs at a time (import_one_running); a run left 'running' by a crash is failed by the
-- next confirm after an hour.
CREATE TABLE import_run (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL CHECK (source IN ('plex', 'csv')),
    actor       TEXT NOT NULL,
    plan        TEXT NOT NULL,
    people      INTEGER NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('previewed', 'running', 'done', 'failed')),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    added       INTEGER
);
CREATE UNIQUE INDEX import_one_running ON import_run (state) WHERE state = 'running';

-- Seats on an owner Plex account that are not Usher's shares: the owner, Plex Home members,
-- friends and shared users made outside Usher, pending invites Usher did not send. Read from
-- plex.tv by an import and the hourly reconcile; seats used = this + the people Usher shares the
-- account's servers with. NULL until first read (then only the owner is assumed).
ALTER TABLE owner_account ADD COLUMN seats_outside INTEGER;
ALTER TABLE owner_account ADD COLUMN seats_checked_at TEXT;

-- The plex.tv section ids an imported share had when it was adopted (comma-separated), kept for
-- the admins: the plan decides the libraries from then on.
ALTER TABLE share ADD COLUMN imported_libraries TEXT;
