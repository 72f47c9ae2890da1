-- The vault also keeps the store's webhook signing secrets: kind
-- 'webhook_secret', mailbox_id 'webhooks/{id}' (no mailbox id has a slash).

-- +goose Up
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('gmail_refresh_token', 'imap_password', 'webhook_secret'));

-- +goose Down
DELETE FROM credentials WHERE kind = 'webhook_secret';
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('gmail_refresh_token', 'imap_password'));
