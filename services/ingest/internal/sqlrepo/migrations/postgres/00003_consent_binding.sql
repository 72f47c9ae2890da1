-- +goose Up
-- The hash of the binding of the browser that opened the consent first
-- (StartAuthorization); empty until then. The consent completes only with
-- the same binding.
ALTER TABLE auth_states ADD COLUMN binding_hash TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE auth_states DROP COLUMN binding_hash;
