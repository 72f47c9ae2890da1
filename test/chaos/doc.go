// Package chaos is mailroom's chaos suite: it runs `mailroom cluster` (three
// JetStream nodes, two replicas of every service and two gateways, each its
// own process) against a Postgres server of its own and the project's fake
// OpenAI, backfills 20 users × 100 mails that need the model, breaks one
// part per scenario (kill -9, SIGSTOP, NATS nodes, Postgres, OpenAI
// outages, a poison mail) and checks that every imported mail is stored and
// classified exactly once. Its tests are the suite; `make chaos` runs every
// scenario (MAILROOM_CHAOS=all), `make test` a representative third.
package chaos
