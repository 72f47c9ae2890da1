// Package bench measures the store on both backends: how many classified
// messages per second the real repository records in the batches the
// consumer makes (BenchmarkWrite, `go test -bench`, comparable with
// benchstat), and how fast ListMessages answers over a fixture of a million
// messages (Load fills it with COPY; Latency samples the queries; the
// storebench command prints the table that `make bench-store` shows).
package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"mailroom.dev/services/store/internal/mailstore"
)

// Categories are the default taxonomy's categories, the fixture's verdicts.
var Categories = []string{
	"important", "personal", "work", "finance", "shopping", "travel",
	"newsletters", "promotions", "social", "notifications", "security", "other",
}

// UserID is the id of the fixture's i-th user.
func UserID(i int) string { return fmt.Sprintf("user-%03d", i) }

// Message returns the fixture's n-th message of user: a plausible mail of a
// few hundred bytes of metadata, received n minutes before end, in one of
// two mailboxes. The same arguments give the same message.
func Message(user string, n int, end time.Time) mailstore.Message {
	r := rand.New(rand.NewPCG(uint64(n), uint64(len(user))))
	sender := fmt.Sprintf("sender%d@example%d.com", r.IntN(200), r.IntN(20))
	mailbox := "inbox"
	if n%5 == 0 {
		mailbox = "work"
	}
	return mailstore.Message{
		User:              user,
		ID:                fmt.Sprintf("%s-%08d", mailbox, n),
		MailboxID:         mailbox,
		ProviderMessageID: fmt.Sprintf("%016x", r.Uint64()),
		Subject:           fmt.Sprintf("Your weekly summary #%d: updates, invoices and an invitation", n),
		From:              "Sender Name <" + sender + ">",
		FromAddress:       sender,
		To:                []string{"Some User <" + user + "@example.org>"},
		ReceivedTime:      end.Add(-time.Duration(n) * time.Minute).UTC().Truncate(time.Microsecond),
		Snippet:           "Hello, here is what happened this week in the projects you follow, with the numbers you asked for and a few links",
		SizeBytes:         int64(2000 + r.IntN(50000)),
		AttachmentNames:   attachments(r),
		State:             mailstore.StatePending,
	}
}

func attachments(r *rand.Rand) []string {
	if r.IntN(4) == 0 {
		return []string{"invoice.pdf"}
	}
	return nil
}

// Verdict returns a verdict on m as the classifier reports it, classified
// at at: mostly the rules tier, some by the model with a cost.
func Verdict(m mailstore.Message, n int, at time.Time) mailstore.Classified {
	m.State = mailstore.StateClassified
	c := &mailstore.Classification{
		Category:     Categories[n%len(Categories)],
		Confidence:   0.9,
		Priority:     mailstore.PriorityNormal,
		NeedsReply:   n%10 == 0,
		Reason:       "the sender's list headers",
		Source:       mailstore.SourceRules,
		Rule:         "list-unsubscribe",
		ClassifyTime: at.UTC().Truncate(time.Microsecond),
	}
	var cost mailstore.Cost
	if n%3 == 0 {
		c.Source, c.Rule, c.Model = mailstore.SourceLLM, "", "gpt-4o-mini"
		cost = mailstore.Cost{PromptTokens: 450, CompletionTokens: 20, CachedPromptTokens: 256, CostMicros: 80, Requests: 1}
	}
	m.Classification = c
	return mailstore.Classified{Message: m, Cost: cost}
}
