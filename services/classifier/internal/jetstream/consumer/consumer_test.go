package consumer_test

import (
	"testing"
	"time"

	"mailroom.dev/services/classifier/internal/jetstream/consumer"
)

func TestRetryDelay(t *testing.T) {
	for delivered, want := range map[uint64]time.Duration{
		0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		6: 32 * time.Second, 7: time.Minute, 10: time.Minute, 1 << 40: time.Minute,
	} {
		if got := consumer.RetryDelay(delivered); got != want {
			t.Errorf("RetryDelay(%d) = %v, want %v", delivered, got, want)
		}
	}
}

func TestClassifiedMsgID(t *testing.T) {
	if got, want := consumer.ClassifiedMsgID("users/ada/messages/m1"), "classified/users/ada/messages/m1"; got != want {
		t.Errorf("ClassifiedMsgID = %q, want %q", got, want)
	}
}
