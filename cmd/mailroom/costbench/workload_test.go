package main

import (
	"reflect"
	"testing"
)

// TestWorkloadFileIsTheSeededOne: the file kept in the repository is what
// the fixed seed generates, so the benchmark's input is known.
func TestWorkloadFileIsTheSeededOne(t *testing.T) {
	got, err := readWorkload("../../../bench/cost/workload.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	want := Generate(20, 500)
	if len(got) != 10000 || !reflect.DeepEqual(got, want) {
		t.Fatalf("bench/cost/workload.jsonl.gz (%d mails) differs from Generate(20, 500): run go run ./cmd/mailroom/costbench -generate", len(got))
	}
	senders := map[string]map[string]bool{}
	for _, m := range got {
		if senders[m.User] == nil {
			senders[m.User] = map[string]bool{}
		}
		senders[m.User][m.From] = true
	}
	for u, s := range senders {
		// Repeated senders: far fewer senders than mails.
		if len(s) > 100 {
			t.Errorf("%s has %d senders for 500 mails", u, len(s))
		}
	}
}
