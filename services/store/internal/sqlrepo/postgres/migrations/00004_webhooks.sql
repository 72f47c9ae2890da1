-- +goose Up

-- store_webhooks are the endpoints that receive a user's classifications.
-- The secret signs deliveries, so it is kept as it is (a receiver needs the
-- same bytes); it is shown to its user once and never logged.
CREATE TABLE store_webhooks (
    user_id              text COLLATE "C" NOT NULL,
    id                   text COLLATE "C" NOT NULL,
    url                  text NOT NULL,
    display_name         text NOT NULL DEFAULT '',
    secret               text NOT NULL,
    state                text NOT NULL CHECK (state IN ('active', 'disabled')),
    create_time          timestamptz NOT NULL,
    last_success_time    timestamptz,
    last_failure_time    timestamptz,
    last_error           text NOT NULL DEFAULT '',
    consecutive_failures bigint NOT NULL DEFAULT 0,
    disable_reason       text NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, id)
);

-- +goose Down
DROP TABLE store_webhooks;
