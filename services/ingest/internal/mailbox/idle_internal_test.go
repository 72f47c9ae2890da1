package mailbox

import "testing"

// TestFairShare spreads mailboxes evenly across replicas, none above its
// cap: a replica with room takes what the full ones cannot.
func TestFairShare(t *testing.T) {
	for _, c := range []struct {
		caps  map[string]int
		total int
		want  map[string]int
	}{
		{map[string]int{"a": 100}, 7, map[string]int{"a": 7}},
		{map[string]int{"a": 100}, 0, map[string]int{"a": 0}},
		{map[string]int{"a": 100, "b": 100}, 6, map[string]int{"a": 3, "b": 3}},
		{map[string]int{"a": 100, "b": 100}, 7, map[string]int{"a": 4, "b": 4}},
		{map[string]int{"a": 100, "b": 100, "c": 100}, 10, map[string]int{"a": 4, "b": 4, "c": 4}},
		{map[string]int{"a": 2, "b": 100}, 10, map[string]int{"a": 2, "b": 8}},
		{map[string]int{"a": 2, "b": 3}, 10, map[string]int{"a": 2, "b": 3}},
		{map[string]int{"a": 2, "b": 3, "c": 10}, 9, map[string]int{"a": 2, "b": 3, "c": 4}},
		{map[string]int{"a": 5, "b": 5, "c": 1}, 9, map[string]int{"a": 4, "b": 4, "c": 1}},
	} {
		sum := 0
		for id, want := range c.want {
			got := fairShare(c.caps, id, c.total)
			if got != want {
				t.Errorf("fairShare(%v, %s, %d) = %d, want %d", c.caps, id, c.total, got, want)
			}
			sum += got
		}
		capacity := 0
		for _, n := range c.caps {
			capacity += n
		}
		if sum < min(c.total, capacity) {
			t.Errorf("%v, %d: the shares hold %d", c.caps, c.total, sum)
		}
	}
}
