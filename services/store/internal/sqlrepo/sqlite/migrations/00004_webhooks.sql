-- +goose Up

-- store_webhooks are the endpoints that receive a user's classifications.
-- The secret signs deliveries, so it is kept as it is (a receiver needs the
-- same bytes); it is shown to its user once and never logged. Times are
-- Unix microseconds.
CREATE TABLE store_webhooks (
    user_id              TEXT NOT NULL,
    id                   TEXT NOT NULL,
    url                  TEXT NOT NULL,
    display_name         TEXT NOT NULL DEFAULT '',
    secret               TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('active', 'disabled')),
    create_time          INTEGER NOT NULL,
    last_success_time    INTEGER,
    last_failure_time    INTEGER,
    last_error           TEXT NOT NULL DEFAULT '',
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disable_reason       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE store_webhooks;
