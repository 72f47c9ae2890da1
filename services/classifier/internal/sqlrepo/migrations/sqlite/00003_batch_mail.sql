-- +goose Up
-- Backfill mail sent in an OpenAI batch not yet finished: after a restart,
-- a redelivered mail waits for its batch instead of being sent (and paid
-- for) again.
CREATE TABLE classifier_batch_mail (
    message     TEXT PRIMARY KEY,
    batch_id    TEXT NOT NULL,
    create_time BIGINT NOT NULL
);
CREATE INDEX classifier_batch_mail_batch ON classifier_batch_mail (batch_id);

-- +goose Down
DROP TABLE classifier_batch_mail;
