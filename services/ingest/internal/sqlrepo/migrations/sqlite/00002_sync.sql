-- +goose Up
-- IMAP connection settings (JSON, no password: that is in auth's vault).
ALTER TABLE mailboxes ADD COLUMN settings TEXT NOT NULL DEFAULT '';

ALTER TABLE sync_jobs ADD COLUMN classified  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN owner       TEXT   NOT NULL DEFAULT '';
ALTER TABLE sync_jobs ADD COLUMN lease_until INTEGER;

-- At most one job per mailbox is waiting or running, whatever the replicas do.
CREATE UNIQUE INDEX sync_jobs_one_active ON sync_jobs (user_id, mailbox_id) WHERE state IN ('PENDING', 'RUNNING');
CREATE INDEX sync_jobs_claimable ON sync_jobs (create_time) WHERE state IN ('PENDING', 'RUNNING');
CREATE INDEX sync_jobs_by_user ON sync_jobs (user_id, create_time DESC, id DESC);

-- Every message a mailbox handed over (published) or could never hand over
-- (failed): syncs skip them, so nothing is published twice, and the
-- mailbox's message_count is the number of published rows.
CREATE TABLE mailbox_messages (
    user_id             TEXT     NOT NULL,
    mailbox_id          TEXT     NOT NULL,
    provider_message_id TEXT     NOT NULL,
    message_id          TEXT     NOT NULL,
    sync_job_id         TEXT     NOT NULL DEFAULT '',
    status              TEXT     NOT NULL,
    classified          INTEGER NOT NULL DEFAULT 0,
    create_time         INTEGER   NOT NULL,
    PRIMARY KEY (user_id, mailbox_id, provider_message_id),
    FOREIGN KEY (user_id, mailbox_id) REFERENCES mailboxes (user_id, id) ON DELETE CASCADE
);

-- Pending Gmail consents: the SHA-256 of the state parameter, never the state.
CREATE TABLE auth_states (
    state_hash  TEXT   NOT NULL PRIMARY KEY,
    user_id     TEXT   NOT NULL,
    mailbox_id  TEXT   NOT NULL,
    verifier    TEXT   NOT NULL,
    expire_time INTEGER NOT NULL,
    FOREIGN KEY (user_id, mailbox_id) REFERENCES mailboxes (user_id, id) ON DELETE CASCADE
);
CREATE INDEX auth_states_by_mailbox ON auth_states (user_id, mailbox_id);

-- +goose Down
DROP TABLE auth_states;
DROP TABLE mailbox_messages;
DROP INDEX sync_jobs_by_user;
DROP INDEX sync_jobs_claimable;
DROP INDEX sync_jobs_one_active;
ALTER TABLE sync_jobs DROP COLUMN lease_until;
ALTER TABLE sync_jobs DROP COLUMN owner;
ALTER TABLE sync_jobs DROP COLUMN classified;
ALTER TABLE mailboxes DROP COLUMN settings;
