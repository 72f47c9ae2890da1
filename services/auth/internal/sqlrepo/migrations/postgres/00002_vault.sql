-- Issue 6: signing key rotation and encryption, service keys, the
-- credential vault.

-- +goose Up

-- A signing key is published from its creation and signs from its
-- activate_time. Its private key (the 32-byte Ed25519 seed) is sealed by the
-- vault: kek_id names the key-encryption key, wrapped_key is the wrapped
-- data key and private_key the ciphertext; while no key-encryption key is
-- configured, kek_id and wrapped_key are NULL and private_key is the seed.
-- A retired key's private key is erased (empty).
ALTER TABLE signing_keys ADD COLUMN activate_time BIGINT NOT NULL DEFAULT 0;
UPDATE signing_keys SET activate_time = create_time;
ALTER TABLE signing_keys ADD COLUMN kek_id TEXT;
ALTER TABLE signing_keys ADD COLUMN wrapped_key BYTEA;

-- The keys of mailroom's services (MAILROOM_SERVICE_KEYS), one per service,
-- as the SHA-256 of the key, never the key.
CREATE TABLE service_keys (
    service     TEXT COLLATE "C" PRIMARY KEY,
    prefix      TEXT NOT NULL,
    hash        BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
    create_time BIGINT NOT NULL
);

-- Mailbox credentials, encrypted: AES-256-GCM under a data key of their own
-- (ciphertext), the data key wrapped under the key-encryption key kek_id
-- (wrapped_key). Both are bound to (user_id, mailbox_id, kind), so a value
-- moved to another row does not decrypt.
CREATE TABLE credentials (
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mailbox_id  TEXT COLLATE "C" NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('gmail_refresh_token', 'imap_password')),
    kek_id      TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    PRIMARY KEY (user_id, mailbox_id)
);
CREATE INDEX credentials_kek_id ON credentials (kek_id);

-- +goose Down
DROP TABLE credentials;
DROP TABLE service_keys;
ALTER TABLE signing_keys DROP COLUMN wrapped_key;
ALTER TABLE signing_keys DROP COLUMN kek_id;
ALTER TABLE signing_keys DROP COLUMN activate_time;
