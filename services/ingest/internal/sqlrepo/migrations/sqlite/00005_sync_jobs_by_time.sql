-- +goose Up
-- An admin's list of every user's sync jobs (ListSyncJobs users/-), newest
-- first, in keyset pages of create time, user and id.
CREATE INDEX sync_jobs_by_time ON sync_jobs (create_time DESC, user_id DESC, id DESC);

-- +goose Down
DROP INDEX sync_jobs_by_time;
