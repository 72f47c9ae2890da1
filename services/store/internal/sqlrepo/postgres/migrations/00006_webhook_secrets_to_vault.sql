-- +goose Up

-- Webhook signing secrets now live in auth's credential vault, encrypted
-- (users/{user}/webhooks/{id}/secret); this database keeps none. A webhook
-- made before has no secret there: it is disabled, and its user deletes it
-- and creates it again (which shows a new secret).
UPDATE store_webhooks
SET state = 'disabled',
    disable_reason = 'created before signing secrets moved to the vault: delete it and create it again'
WHERE state = 'active';
ALTER TABLE store_webhooks DROP COLUMN secret;

-- +goose Down
ALTER TABLE store_webhooks ADD COLUMN secret text NOT NULL DEFAULT '';
