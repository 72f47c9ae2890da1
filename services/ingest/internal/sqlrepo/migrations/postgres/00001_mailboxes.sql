-- +goose Up
-- Times are unix microseconds (UTC), so that the SQL is the same on SQLite.
CREATE TABLE mailboxes (
    user_id        TEXT   NOT NULL,
    id             TEXT   NOT NULL,
    provider       TEXT   NOT NULL,
    address        TEXT   NOT NULL DEFAULT '',
    display_name   TEXT   NOT NULL DEFAULT '',
    state          TEXT   NOT NULL,
    state_reason   TEXT   NOT NULL DEFAULT '',
    sync_cursor    TEXT   NOT NULL DEFAULT '',
    message_count  BIGINT NOT NULL DEFAULT 0,
    create_time    BIGINT NOT NULL,
    last_sync_time BIGINT,
    PRIMARY KEY (user_id, id)
);

CREATE TABLE sync_jobs (
    user_id      TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    mailbox_id   TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    max_messages INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    listed       BIGINT  NOT NULL DEFAULT 0,
    fetched      BIGINT  NOT NULL DEFAULT 0,
    published    BIGINT  NOT NULL DEFAULT 0,
    skipped      BIGINT  NOT NULL DEFAULT 0,
    failed       BIGINT  NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT '',
    create_time  BIGINT  NOT NULL,
    update_time  BIGINT  NOT NULL,
    end_time     BIGINT,
    PRIMARY KEY (user_id, id),
    FOREIGN KEY (user_id, mailbox_id) REFERENCES mailboxes (user_id, id) ON DELETE CASCADE
);

CREATE INDEX sync_jobs_by_mailbox ON sync_jobs (user_id, mailbox_id, create_time);

-- +goose Down
DROP TABLE sync_jobs;
DROP TABLE mailboxes;
