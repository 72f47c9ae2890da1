-- +goose Up

-- enable_time is when a webhook was last set ACTIVE again after being
-- DISABLED, in Unix microseconds (NULL: never, so its create_time). A
-- delivery's retry period runs from the later of its queueing and this, so
-- that a delivery queued before a re-enable does not disable the webhook
-- again at its next failure.
ALTER TABLE store_webhooks ADD COLUMN enable_time INTEGER;

-- +goose Down
ALTER TABLE store_webhooks DROP COLUMN enable_time;
