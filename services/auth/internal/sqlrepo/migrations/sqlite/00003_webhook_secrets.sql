-- The vault also keeps the store's webhook signing secrets (see the
-- Postgres migration). SQLite cannot alter a CHECK: the table is rebuilt.

-- +goose Up
CREATE TABLE credentials_new (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id  TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('gmail_refresh_token', 'imap_password', 'webhook_secret')),
    kek_id      TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (user_id, mailbox_id)
) STRICT;
INSERT INTO credentials_new SELECT user_id, mailbox_id, kind, kek_id, wrapped_key, ciphertext, create_time, update_time FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_kek_id ON credentials (kek_id);

-- +goose Down
CREATE TABLE credentials_old (
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
INSERT INTO credentials_old SELECT user_id, mailbox_id, kind, kek_id, wrapped_key, ciphertext, create_time, update_time FROM credentials WHERE kind != 'webhook_secret';
DROP TABLE credentials;
ALTER TABLE credentials_old RENAME TO credentials;
CREATE INDEX credentials_kek_id ON credentials (kek_id);
