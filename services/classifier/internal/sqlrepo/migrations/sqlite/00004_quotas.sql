-- +goose Up
-- A user's own daily quotas, set by an admin (0: the server's default,
-- -1: no limit).
CREATE TABLE classifier_quotas (
    user_id              TEXT PRIMARY KEY,
    model_tokens_per_day BIGINT NOT NULL,
    mails_per_day        BIGINT NOT NULL,
    update_time          BIGINT NOT NULL
);

-- What each user used of its quotas, per UTC day ("2006-01-02").
CREATE TABLE classifier_quota_use (
    user_id      TEXT NOT NULL,
    day          TEXT NOT NULL,
    model_tokens BIGINT NOT NULL,
    mails        BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);

-- +goose Down
DROP TABLE classifier_quota_use;
DROP TABLE classifier_quotas;
