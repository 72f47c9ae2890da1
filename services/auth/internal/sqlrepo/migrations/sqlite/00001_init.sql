-- Times are unix microseconds (INTEGER here, BIGINT on Postgres), so that
-- the repository's SQL is the same on both backends. Tables are STRICT, so
-- that SQLite checks column types as Postgres does.

-- +goose Up
CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    email        TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    create_time  INTEGER NOT NULL
) STRICT;

-- An API key is stored as the SHA-256 of its secret, never the secret.
-- A revoked key keeps its row (revoke_time set), for the record.
CREATE TABLE api_keys (
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    prefix        TEXT NOT NULL,
    hash          BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    create_time   INTEGER NOT NULL,
    last_use_time INTEGER,
    revoke_time   INTEGER,
    PRIMARY KEY (user_id, id)
) STRICT;

-- Signing keys of identity tokens. The private key is the 32-byte Ed25519
-- seed, stored unencrypted for now (a later issue encrypts it under the
-- vault's key-encryption key). generation is unique so that replicas
-- starting together create one key.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL UNIQUE,
    algorithm   TEXT NOT NULL CHECK (algorithm = 'EdDSA'),
    private_key BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    retire_time INTEGER
) STRICT;

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE users;
