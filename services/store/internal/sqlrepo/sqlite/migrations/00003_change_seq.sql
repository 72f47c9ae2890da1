-- +goose Up

-- change_seq orders the changes of each user's messages for WatchMessages:
-- every insert or update of a row gives it a new, larger number from the
-- one-row counter below. SQLite has one writer at a time, so numbers are
-- committed in order and a cursor never skips a change.
CREATE TABLE store_change_counter (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO store_change_counter (id, seq) SELECT 1, count(*) FROM store_messages;

ALTER TABLE store_messages ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
-- Existing rows are numbered once, in the order they last changed.
UPDATE store_messages SET change_seq = r.n
FROM (SELECT user_id, id, row_number() OVER (ORDER BY update_time, user_id, id) AS n FROM store_messages) AS r
WHERE r.user_id = store_messages.user_id AND r.id = store_messages.id;

CREATE INDEX store_messages_changes ON store_messages (user_id, change_seq);

-- The triggers' own UPDATE changes change_seq, which the WHEN clause of the
-- update trigger excludes (and recursive triggers are off anyway). An update
-- that changes nothing a client sees (a late MailReceived that only marks
-- the row received, its update_time) keeps the row's number, so that a
-- watcher is not sent the same message twice; a column added later that
-- clients see belongs in the list.
-- +goose StatementBegin
CREATE TRIGGER store_messages_insert_change AFTER INSERT ON store_messages
BEGIN
    UPDATE store_change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE store_messages SET change_seq = (SELECT seq FROM store_change_counter WHERE id = 1)
    WHERE user_id = NEW.user_id AND id = NEW.id;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER store_messages_update_change AFTER UPDATE ON store_messages
WHEN NEW.change_seq = OLD.change_seq
 AND (NEW.mailbox_id, NEW.provider_message_id, NEW.subject, NEW.sender, NEW.sender_address, NEW.recipients,
      NEW.received_time, NEW.snippet, NEW.size_bytes, NEW.attachment_names, NEW.body, NEW.state,
      NEW.category, NEW.confidence, NEW.priority, NEW.needs_reply, NEW.reason, NEW.source, NEW.rule,
      NEW.model, NEW.classify_time, NEW.failure_reason, NEW.fail_time)
     IS NOT
     (OLD.mailbox_id, OLD.provider_message_id, OLD.subject, OLD.sender, OLD.sender_address, OLD.recipients,
      OLD.received_time, OLD.snippet, OLD.size_bytes, OLD.attachment_names, OLD.body, OLD.state,
      OLD.category, OLD.confidence, OLD.priority, OLD.needs_reply, OLD.reason, OLD.source, OLD.rule,
      OLD.model, OLD.classify_time, OLD.failure_reason, OLD.fail_time)
BEGIN
    UPDATE store_change_counter SET seq = seq + 1 WHERE id = 1;
    UPDATE store_messages SET change_seq = (SELECT seq FROM store_change_counter WHERE id = 1)
    WHERE user_id = NEW.user_id AND id = NEW.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER store_messages_update_change;
DROP TRIGGER store_messages_insert_change;
DROP INDEX store_messages_changes;
ALTER TABLE store_messages DROP COLUMN change_seq;
DROP TABLE store_change_counter;
