-- +goose Up

-- The usage ledger splits each record's cost by model (JSON array of
-- {"model", "prompt_tokens", "completion_tokens", "cached_prompt_tokens",
-- "cost_micros", "requests", "batch"}), so that spend is known per user and
-- per model. Records of source 'dead_letter' are the paid attempts of a
-- message the classifier gave up on.
ALTER TABLE store_classification_usage ADD COLUMN models jsonb NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE store_classification_usage DROP COLUMN models;
