-- Times are unix microseconds (BIGINT), so that the repository's SQL is the
-- same on Postgres and SQLite.

-- +goose Up
-- A user's taxonomy, once changed from the default: the categories as JSON
-- ([{"name": …, "description": …}, …]).
CREATE TABLE classifier_taxonomies (
    user_id     TEXT PRIMARY KEY,
    categories  TEXT NOT NULL,
    update_time BIGINT NOT NULL
);

-- Verdicts of the language model by the content they judged, per user and
-- taxonomy: the same mail (a newsletter sent to many, a resend) is paid for once.
CREATE TABLE classifier_cache (
    user_id      TEXT NOT NULL,
    taxonomy_key TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category     TEXT NOT NULL,
    confidence   DOUBLE PRECISION NOT NULL,
    priority     INTEGER NOT NULL,
    needs_reply  BOOLEAN NOT NULL,
    reason       TEXT NOT NULL,
    model        TEXT NOT NULL,
    create_time  BIGINT NOT NULL,
    PRIMARY KEY (user_id, taxonomy_key, content_hash)
);
CREATE INDEX classifier_cache_age ON classifier_cache (create_time);

-- What the language model cost, per UTC day, for the budget guard.
CREATE TABLE classifier_spend (
    day    TEXT PRIMARY KEY,
    micros BIGINT NOT NULL
);

-- +goose Down
DROP TABLE classifier_spend;
DROP TABLE classifier_cache;
DROP TABLE classifier_taxonomies;
