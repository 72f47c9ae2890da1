-- Issue 6: signing key rotation and encryption, service keys, the
-- credential vault. (See the Postgres migration for the columns' meaning.)

-- +goose Up
ALTER TABLE signing_keys ADD COLUMN activate_time INTEGER NOT NULL DEFAULT 0;
UPDATE signing_keys SET activate_time = create_time;
ALTER TABLE signing_keys ADD COLUMN kek_id TEXT;
ALTER TABLE signing_keys ADD COLUMN wrapped_key BLOB;

CREATE TABLE service_keys (
    service     TEXT PRIMARY KEY,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    create_time INTEGER NOT NULL
) STRICT;

CREATE TABLE credentials (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('gmail_refresh_token', 'imap_password')),
    kek_id      TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (user_id, mailbox_id)
) STRICT;
CREATE INDEX credentials_kek_id ON credentials (kek_id);

-- +goose Down
DROP TABLE credentials;
DROP TABLE service_keys;
ALTER TABLE signing_keys DROP COLUMN wrapped_key;
ALTER TABLE signing_keys DROP COLUMN kek_id;
ALTER TABLE signing_keys DROP COLUMN activate_time;
