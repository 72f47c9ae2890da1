package mailstore

import (
	"cmp"
	"encoding/json"
	"slices"
)

// Adapters write a batch as one statement per row inside one transaction.
// They first reduce it with these functions: one row per key (Postgres
// refuses a key twice in one INSERT … ON CONFLICT statement, and a duplicate
// is wasted work anyway), sorted by key, so that concurrent transactions
// lock rows in the same order and cannot deadlock.

func compareKey(a, b Message) int {
	return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.ID, b.ID))
}

// DistinctMessages returns one message per (User, ID), the last one given,
// sorted by key.
func DistinctMessages(msgs []Message) []Message {
	out := slices.Clone(msgs)
	// A stable sort keeps equal keys in input order; keep the last of each run.
	slices.SortStableFunc(out, compareKey)
	n := 0
	for i := range out {
		if i+1 < len(out) && compareKey(out[i], out[i+1]) == 0 {
			continue
		}
		out[n] = out[i]
		n++
	}
	return out[:n]
}

// LatestVerdicts returns one verdict per message (User, ID), the one with
// the latest ClassifyTime (the last given among equals), sorted by key.
func LatestVerdicts(verdicts []Classified) []Classified {
	out := slices.Clone(verdicts)
	slices.SortStableFunc(out, func(a, b Classified) int {
		return cmp.Or(compareKey(a.Message, b.Message),
			a.Message.Classification.ClassifyTime.Compare(b.Message.Classification.ClassifyTime))
	})
	n := 0
	for i := range out {
		if i+1 < len(out) && compareKey(out[i].Message, out[i+1].Message) == 0 {
			continue
		}
		out[n] = out[i]
		n++
	}
	return out[:n]
}

// DistinctVerdicts returns one verdict per (User, ID, ClassifyTime), the
// first given, sorted: the rows of the usage ledger.
func DistinctVerdicts(verdicts []Classified) []Classified {
	key := func(a, b Classified) int {
		return cmp.Or(compareKey(a.Message, b.Message),
			a.Message.Classification.ClassifyTime.Compare(b.Message.Classification.ClassifyTime))
	}
	out := slices.Clone(verdicts)
	slices.SortStableFunc(out, key)
	return slices.CompactFunc(out, func(a, b Classified) bool { return key(a, b) == 0 })
}

// LatestFailures returns one failure per message (User, ID), the one with
// the latest FailTime (the last given among equals), sorted by key.
func LatestFailures(failures []Failed) []Failed {
	out := slices.Clone(failures)
	slices.SortStableFunc(out, func(a, b Failed) int {
		return cmp.Or(compareKey(a.Message, b.Message), a.FailTime.Compare(b.FailTime))
	})
	n := 0
	for i := range out {
		if i+1 < len(out) && compareKey(out[i].Message, out[i+1].Message) == 0 {
			continue
		}
		out[n] = out[i]
		n++
	}
	return out[:n]
}

// DistinctFailures returns one failure per (User, ID, FailTime), the first
// given, sorted: the dead-letter rows of the usage ledger.
func DistinctFailures(failures []Failed) []Failed {
	key := func(a, b Failed) int {
		return cmp.Or(compareKey(a.Message, b.Message), a.FailTime.Compare(b.FailTime))
	}
	out := slices.Clone(failures)
	slices.SortStableFunc(out, key)
	return slices.CompactFunc(out, func(a, b Failed) bool { return key(a, b) == 0 })
}

// ModelsJSON is the ledger's JSON of c.Models ("[]" when there are none).
func ModelsJSON(c Cost) string {
	if len(c.Models) == 0 {
		return "[]"
	}
	raw, err := json.Marshal(c.Models)
	if err != nil {
		return "[]"
	}
	return string(raw)
}
