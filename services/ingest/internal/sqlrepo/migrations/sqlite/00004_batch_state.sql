-- +goose Up
-- Whether a message waits in an OpenAI batch (classifier's mail.batch
-- events): 0 never was, 1 waits in one, 2 left it (answered, or sent to
-- the realtime path). batch_time is the time of the last event applied
-- (microseconds): an older event, redelivered or late, changes nothing.
ALTER TABLE mailbox_messages ADD COLUMN batch_state INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailbox_messages ADD COLUMN batch_time  INTEGER  NOT NULL DEFAULT 0;
-- The batch events name messages by their message id.
CREATE INDEX mailbox_messages_by_message ON mailbox_messages (user_id, message_id);
-- How many of the job's messages wait in a batch now.
ALTER TABLE sync_jobs ADD COLUMN batched INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE sync_jobs DROP COLUMN batched;
DROP INDEX mailbox_messages_by_message;
ALTER TABLE mailbox_messages DROP COLUMN batch_time;
ALTER TABLE mailbox_messages DROP COLUMN batch_state;
