-- +goose Up
-- What the classifier has learned of a user's senders: key is
-- "from:<address>" or "list:<List-Id>"; count is how many confident model
-- verdicts in a row agreed on category; corrected means the user set it.
CREATE TABLE classifier_senders (
    user_id     TEXT NOT NULL,
    sender_key  TEXT NOT NULL,
    category    TEXT NOT NULL,
    count       INTEGER NOT NULL,
    corrected   BOOLEAN NOT NULL,
    model       TEXT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (user_id, sender_key)
);

-- A user's corrections, shown to the model as few-shot examples.
CREATE TABLE classifier_examples (
    user_id     TEXT NOT NULL,
    message     TEXT NOT NULL,
    sender      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    category    TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (user_id, message)
);
CREATE INDEX classifier_examples_latest ON classifier_examples (user_id, create_time);

-- +goose Down
DROP TABLE classifier_examples;
DROP TABLE classifier_senders;
