-- +goose Up

-- store_messages holds one row per (user, message id), whichever of MailReceived
-- and MailClassified arrives first. Ids use the C collation so that keyset
-- pages order them bytewise, as SQLite does.
CREATE TABLE store_messages (
    user_id             text COLLATE "C" NOT NULL,
    id                  text COLLATE "C" NOT NULL,
    mailbox_id          text COLLATE "C" NOT NULL,
    provider_message_id text NOT NULL,
    subject             text NOT NULL DEFAULT '',
    sender              text NOT NULL DEFAULT '',
    sender_address      text NOT NULL DEFAULT '',
    recipients          text[] NOT NULL DEFAULT '{}',
    received_time       timestamptz NOT NULL,
    snippet             text NOT NULL DEFAULT '',
    size_bytes          bigint NOT NULL DEFAULT 0,
    attachment_names    text[] NOT NULL DEFAULT '{}',
    body                text NOT NULL DEFAULT '',
    -- received is true once MailReceived was stored: its metadata is then
    -- authoritative and a verdict no longer fills it.
    received            boolean NOT NULL DEFAULT false,
    state               text NOT NULL CHECK (state IN ('pending', 'classified', 'failed')),
    category            text COLLATE "C",
    confidence          real,
    priority            text,
    needs_reply         boolean,
    reason              text,
    source              text,
    rule                text,
    model               text,
    classify_time       timestamptz,
    create_time         timestamptz NOT NULL DEFAULT now(),
    update_time         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);

-- The list query: a user's messages newest first, optionally one category
-- or one mailbox, with a keyset cursor on (received_time, id).
CREATE INDEX store_messages_list ON store_messages (user_id, received_time DESC, id DESC);
CREATE INDEX store_messages_list_category ON store_messages (user_id, category, received_time DESC, id DESC);
CREATE INDEX store_messages_list_mailbox ON store_messages (user_id, mailbox_id, received_time DESC, id DESC);

-- store_classification_usage is the usage ledger: one row per verdict, keyed so
-- that a redelivered MailClassified counts once while a later
-- re-classification of the same message counts again.
CREATE TABLE store_classification_usage (
    user_id              text COLLATE "C" NOT NULL,
    message_id           text COLLATE "C" NOT NULL,
    classify_time        timestamptz NOT NULL,
    source               text NOT NULL,
    prompt_tokens        bigint NOT NULL DEFAULT 0,
    completion_tokens    bigint NOT NULL DEFAULT 0,
    cached_prompt_tokens bigint NOT NULL DEFAULT 0,
    cost_micros          bigint NOT NULL DEFAULT 0,
    requests             bigint NOT NULL DEFAULT 0,
    create_time          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, message_id, classify_time)
);

-- +goose Down
DROP TABLE store_classification_usage;
DROP TABLE store_messages;
