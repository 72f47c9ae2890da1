module mailroom.dev/services/auth

go 1.26.0

replace (
	mailroom.dev/gen/go => ../../gen/go
	mailroom.dev/platform => ../../platform
)
