-- +goose Up

-- store_messages holds one row per (user, message id), whichever of MailReceived
-- and MailClassified arrives first. Times are Unix microseconds (UTC), lists
-- are JSON arrays, booleans 0/1.
CREATE TABLE store_messages (
    user_id             TEXT NOT NULL,
    id                  TEXT NOT NULL,
    mailbox_id          TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    subject             TEXT NOT NULL DEFAULT '',
    sender              TEXT NOT NULL DEFAULT '',
    sender_address      TEXT NOT NULL DEFAULT '',
    recipients          TEXT NOT NULL DEFAULT '[]',
    received_time       INTEGER NOT NULL,
    snippet             TEXT NOT NULL DEFAULT '',
    size_bytes          INTEGER NOT NULL DEFAULT 0,
    attachment_names    TEXT NOT NULL DEFAULT '[]',
    body                TEXT NOT NULL DEFAULT '',
    -- received is 1 once MailReceived was stored: its metadata is then
    -- authoritative and a verdict no longer fills it.
    received            INTEGER NOT NULL DEFAULT 0,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'classified', 'failed')),
    category            TEXT,
    confidence          REAL,
    priority            TEXT,
    needs_reply         INTEGER,
    reason              TEXT,
    source              TEXT,
    rule                TEXT,
    model               TEXT,
    classify_time       INTEGER,
    create_time         INTEGER NOT NULL,
    update_time         INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;

-- The list query: a user's messages newest first, optionally one category
-- or one mailbox, with a keyset cursor on (received_time, id).
CREATE INDEX store_messages_list ON store_messages (user_id, received_time DESC, id DESC);
CREATE INDEX store_messages_list_category ON store_messages (user_id, category, received_time DESC, id DESC);
CREATE INDEX store_messages_list_mailbox ON store_messages (user_id, mailbox_id, received_time DESC, id DESC);

-- store_classification_usage is the usage ledger: one row per verdict, keyed so
-- that a redelivered MailClassified counts once while a later
-- re-classification of the same message counts again.
CREATE TABLE store_classification_usage (
    user_id              TEXT NOT NULL,
    message_id           TEXT NOT NULL,
    classify_time        INTEGER NOT NULL,
    source               TEXT NOT NULL,
    prompt_tokens        INTEGER NOT NULL DEFAULT 0,
    completion_tokens    INTEGER NOT NULL DEFAULT 0,
    cached_prompt_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micros          INTEGER NOT NULL DEFAULT 0,
    requests             INTEGER NOT NULL DEFAULT 0,
    create_time          INTEGER NOT NULL,
    PRIMARY KEY (user_id, message_id, classify_time)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE store_classification_usage;
DROP TABLE store_messages;
