package postgres_test

import (
	"testing"

	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/store/internal/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, testenv.PostgresURL)
}
