-- +goose Up

-- change_seq orders the changes of each user's messages for WatchMessages:
-- every insert or update of a row gives it a new, larger number. Numbers
-- come from one sequence, but a trigger first takes a transaction-scoped
-- advisory lock on the row's user, so that two transactions writing the
-- same user's messages take their numbers one after the other and commit
-- in that order: a reader that sees number n has seen every smaller number
-- of that user that will ever exist, and a cursor never skips a change.
-- An update that changes nothing a client sees (a late MailReceived that
-- only marks the row received, its update_time) keeps the row's number, so
-- that a watcher is not sent the same message twice.
CREATE SEQUENCE store_messages_change_seq AS bigint;

ALTER TABLE store_messages
    ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('store_messages_change_seq');

CREATE INDEX store_messages_changes ON store_messages (user_id, change_seq);

-- +goose StatementBegin
CREATE FUNCTION store_messages_next_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND to_jsonb(NEW) - 'received' - 'update_time' - 'change_seq'
                          = to_jsonb(OLD) - 'received' - 'update_time' - 'change_seq' THEN
        NEW.change_seq := OLD.change_seq;
        RETURN NEW;
    END IF;
    -- 0x6d72 ("mr") keeps these locks apart from the store's other advisory locks.
    PERFORM pg_advisory_xact_lock(x'6d72'::int, hashtext(NEW.user_id));
    NEW.change_seq := nextval('store_messages_change_seq');
    RETURN NEW;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER store_messages_next_change BEFORE INSERT OR UPDATE ON store_messages
    FOR EACH ROW EXECUTE FUNCTION store_messages_next_change();

-- +goose Down
DROP TRIGGER store_messages_next_change ON store_messages;
DROP FUNCTION store_messages_next_change();
DROP INDEX store_messages_changes;
ALTER TABLE store_messages DROP COLUMN change_seq;
DROP SEQUENCE store_messages_change_seq;
