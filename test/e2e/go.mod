module mailroom.dev/test/e2e

go 1.26.0

replace (
	mailroom.dev/cmd/mailroom => ../../cmd/mailroom
	mailroom.dev/gateway => ../../gateway
	mailroom.dev/gen/go => ../../gen/go
	mailroom.dev/platform => ../../platform
	mailroom.dev/services/auth => ../../services/auth
	mailroom.dev/services/classifier => ../../services/classifier
	mailroom.dev/services/ingest => ../../services/ingest
	mailroom.dev/services/store => ../../services/store
)
