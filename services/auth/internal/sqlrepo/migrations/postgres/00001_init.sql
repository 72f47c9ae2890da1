-- Times are unix microseconds (BIGINT) on both backends, so that the
-- repository's SQL is the same on Postgres and SQLite. Ids sort bytewise
-- (COLLATE "C", as SQLite's BINARY), so that pages follow the same order.

-- +goose Up
CREATE TABLE users (
    id           TEXT COLLATE "C" PRIMARY KEY,
    display_name TEXT NOT NULL DEFAULT '',
    email        TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    create_time  BIGINT NOT NULL
);

-- An API key is stored as the SHA-256 of its secret, never the secret.
-- A revoked key keeps its row (revoke_time set), for the record.
CREATE TABLE api_keys (
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id            TEXT COLLATE "C" NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    prefix        TEXT NOT NULL,
    hash          BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
    create_time   BIGINT NOT NULL,
    last_use_time BIGINT,
    revoke_time   BIGINT,
    PRIMARY KEY (user_id, id)
);

-- Signing keys of identity tokens. The private key is the 32-byte Ed25519
-- seed, stored unencrypted for now (a later issue encrypts it under the
-- vault's key-encryption key). generation is unique so that replicas
-- starting together create one key.
CREATE TABLE signing_keys (
    id          TEXT PRIMARY KEY,
    generation  INTEGER NOT NULL UNIQUE,
    algorithm   TEXT NOT NULL CHECK (algorithm = 'EdDSA'),
    private_key BYTEA NOT NULL,
    create_time BIGINT NOT NULL,
    retire_time BIGINT
);

-- +goose Down
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE users;
