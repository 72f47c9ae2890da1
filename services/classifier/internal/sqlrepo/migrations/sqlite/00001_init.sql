-- Times are unix microseconds (INTEGER; BIGINT on Postgres), so that the repository's SQL is the
-- same on both backends. Tables are STRICT: SQLite checks types as Postgres does.

-- +goose Up
-- A user's taxonomy, once changed from the default: the categories as JSON
-- ([{"name": …, "description": …}, …]).
CREATE TABLE classifier_taxonomies (
    user_id     TEXT PRIMARY KEY,
    categories  TEXT NOT NULL,
    update_time INTEGER NOT NULL
) STRICT;

-- Verdicts of the language model by the content they judged, per user and
-- taxonomy: the same mail (a newsletter sent to many, a resend) is paid for once.
CREATE TABLE classifier_cache (
    user_id      TEXT NOT NULL,
    taxonomy_key TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category     TEXT NOT NULL,
    confidence   REAL NOT NULL,
    priority     INTEGER NOT NULL,
    needs_reply  INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    model        TEXT NOT NULL,
    create_time  INTEGER NOT NULL,
    PRIMARY KEY (user_id, taxonomy_key, content_hash)
) STRICT;
CREATE INDEX classifier_cache_age ON classifier_cache (create_time);

-- What the language model cost, per UTC day, for the budget guard.
CREATE TABLE classifier_spend (
    day    TEXT PRIMARY KEY,
    micros INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE classifier_spend;
DROP TABLE classifier_cache;
DROP TABLE classifier_taxonomies;
