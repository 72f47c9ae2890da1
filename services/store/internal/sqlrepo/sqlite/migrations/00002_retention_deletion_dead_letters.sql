-- +goose Up

-- A dead-lettered message is failed: why (no mail content) and when.
ALTER TABLE store_messages ADD COLUMN failure_reason TEXT;
ALTER TABLE store_messages ADD COLUMN fail_time INTEGER;

-- The list query's other filters: one sender's mail, and unclassified mail
-- (few rows once the backlog is classified, so a partial index stays small).
CREATE INDEX store_messages_list_sender ON store_messages (user_id, sender_address, received_time DESC, id DESC);
CREATE INDEX store_messages_list_unclassified ON store_messages (user_id, received_time DESC, id DESC)
    WHERE state <> 'classified';

-- The retention purge walks every user's oldest messages and usage records.
CREATE INDEX store_messages_received_time ON store_messages (received_time);
CREATE INDEX store_classification_usage_classify_time ON store_classification_usage (classify_time);

-- store_deleted_users remembers that a user's data was deleted, and when
-- (Unix microseconds): an event of that user ingested before then that
-- arrives late is dropped instead of bringing the user's mail back. It is
-- forgotten after 90 days, longer than any stream keeps an event.
CREATE TABLE store_deleted_users (
    user_id     TEXT PRIMARY KEY,
    delete_time INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE store_deleted_users;
DROP INDEX store_classification_usage_classify_time;
DROP INDEX store_messages_received_time;
DROP INDEX store_messages_list_unclassified;
DROP INDEX store_messages_list_sender;
ALTER TABLE store_messages DROP COLUMN fail_time;
ALTER TABLE store_messages DROP COLUMN failure_reason;
