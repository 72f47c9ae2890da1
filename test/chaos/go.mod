module mailroom.dev/test/chaos

go 1.26.0

replace (
	mailroom.dev/fakes => ../../fakes
	mailroom.dev/gateway => ../../gateway
	mailroom.dev/gen/go => ../../gen/go
	mailroom.dev/platform => ../../platform
)

require (
	github.com/jackc/pgx/v5 v5.12.0
	github.com/nats-io/nats.go v1.55.0
	mailroom.dev/fakes v0.0.0
	mailroom.dev/platform v0.0.0
)
