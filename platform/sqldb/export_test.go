package sqldb

// WithPoll sets how often MigrateWait checks the schema, for tests.
var WithPoll = withPoll
