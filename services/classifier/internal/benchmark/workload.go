package benchmark

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"mailroom.dev/fakes/fakeopenai"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/services/classifier/internal/classify"
	"mailroom.dev/services/classifier/internal/limiter"
	"mailroom.dev/services/classifier/internal/llm"
	"mailroom.dev/services/classifier/internal/protoconv"
)

// Users returns n user ids: user-01, user-02, …
func Users(n int) []string {
	us := make([]string, n)
	for i := range us {
		us[i] = fmt.Sprintf("user-%02d", i+1)
	}
	return us
}

// Backfill returns perUser plain personal mails for each user in the
// backfill lane, interleaved between users as concurrent first syncs
// publish them. No rule is sure of them (a person writes, no list or bulk
// headers), so each goes to the model; each has its own content, so the
// verdict cache never answers.
func Backfill(users []string, perUser int) []*eventsv1.MailReceived {
	var out []*eventsv1.MailReceived
	for i := range perUser {
		for _, u := range users {
			out = append(out, Mail(u, fmt.Sprintf("m%05d", i), mailv1.Lane_LANE_BACKFILL))
		}
	}
	return out
}

var (
	firstNames = []string{"Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Margaret", "Dennis", "Radia", "John", "Sophie", "Niklaus", "Adele", "Tony", "Jean"}
	lastNames  = []string{"Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth", "Hamilton", "Ritchie", "Perlman", "Backus", "Wilson", "Wirth", "Goldberg", "Hoare", "Sammet"}
	subjects   = []string{
		"Question about item %d", "Dinner plans, week %d", "Re: the draft (version %d)", "Photos from the trip, part %d",
		"Can you look at this before Friday? (%d)", "Catching up — note %d", "Re: Re: invoice question %d", "The plan for Saturday, take %d",
	}
	sentences = []string{
		"I hope this finds you well; it has been a busy few weeks here.",
		"Could you have a look at the attached notes before we meet on Friday?",
		"We were thinking of booking the small place near the station for dinner.",
		"The kids loved the museum, and we stayed much longer than planned.",
		"Let me know if Thursday still works for you, or whether we should move it.",
		"I went through the numbers again and something does not add up in the third table.",
		"My sister says hello and asks whether you still have her blue umbrella.",
		"Thanks again for the help with the move; the flat finally feels like home.",
		"The garden is a mess after the storm, but the tomatoes survived somehow.",
		"Do you remember the name of the bookshop we found in Lisbon last spring?",
		"I will be away for a few days next week, so reply whenever it suits you.",
		"Here is the recipe I promised: it needs less sugar than the original says.",
		"Our landlord finally fixed the heating, just in time for the cold weather.",
		"Shall we split the cost of the present for Anna's birthday three ways?",
		"I finished the book you lent me; the ending surprised me completely.",
		"The train was late again, so I missed the first half of the concert.",
	}
)

// Mail returns a plain personal mail of user, with content of its own
// (distinct subject, body and content hash for every user and id).
func Mail(user, id string, lane mailv1.Lane) *eventsv1.MailReceived {
	h := sha256.Sum256([]byte(user + "/" + id))
	rng := rand.New(rand.NewPCG(uint64(h[0])<<56|uint64(h[1])<<48|uint64(h[2])<<40|uint64(h[3])<<32, uint64(h[4])))
	first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
	from := fmt.Sprintf("%s %s <%s.%s@example.org>", first, last, strings.ToLower(first), strings.ToLower(last))
	subject := fmt.Sprintf(subjects[rng.IntN(len(subjects))], 1+rng.IntN(900))
	var body strings.Builder
	fmt.Fprintf(&body, "Hi,\n\n")
	for range 2 + rng.IntN(7) {
		body.WriteString(sentences[rng.IntN(len(sentences))])
		body.WriteString(" ")
	}
	fmt.Fprintf(&body, "\n\n(Reference %s-%s.)\n\nBest,\n%s", user, id, first)
	text := body.String()
	sum := sha256.Sum256([]byte(from + "\x00" + subject + "\x00" + text))
	received := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
	return &eventsv1.MailReceived{
		User:              user,
		Mailbox:           "users/" + user + "/mailboxes/inbox",
		Message:           "users/" + user + "/messages/" + id,
		ProviderMessageId: "p-" + id,
		Lane:              lane,
		IngestTime:        timestamppb.Now(),
		Content: &mailv1.NormalizedMessage{
			MessageIdHeader: id + "." + user + "@example.org",
			Subject:         subject,
			From:            from,
			FromAddress:     fmt.Sprintf("%s.%s@example.org", strings.ToLower(first), strings.ToLower(last)),
			To:              []string{user + "@example.com"},
			ReceivedTime:    timestamppb.New(received),
			TextBody:        text,
			Snippet:         text[:min(len(text), 80)],
			SizeBytes:       int64(len(text) + 600),
			ContentHash:     hex.EncodeToString(sum[:]),
		},
	}
}

// Escalating returns perUser backfill mails for each user, as Backfill,
// of which every nth (by index, from the first) is urgent (see Urgent):
// the mails the fake answers `important`.
func Escalating(users []string, perUser, nth int) []*eventsv1.MailReceived {
	var out []*eventsv1.MailReceived
	for i := range perUser {
		for _, u := range users {
			id := fmt.Sprintf("m%05d", i)
			if nth > 0 && len(out)%nth == 0 {
				out = append(out, Urgent(u, id, mailv1.Lane_LANE_BACKFILL))
				continue
			}
			out = append(out, Mail(u, id, mailv1.Lane_LANE_BACKFILL))
		}
	}
	return out
}

var urgentSentences = []string{
	"Please call me immediately when you read this; it is urgent.",
	"I need your answer asap, before the office closes today.",
	"Action required: sign the form I sent you this morning and send it back.",
	"This cannot wait until next week, so please treat it as urgent.",
}

// Urgent returns a personal mail of user that the fake OpenAI answers
// `important`: its text has the fake's keywords for it (urgent, asap,
// immediately, action required) and none of those that come before them
// in the fake's rules.
func Urgent(user, id string, lane mailv1.Lane) *eventsv1.MailReceived {
	ev := Mail(user, id, lane)
	h := sha256.Sum256([]byte("urgent/" + user + "/" + id))
	first := strings.Fields(ev.GetContent().GetFrom())[0]
	var body strings.Builder
	fmt.Fprintf(&body, "Hi,\n\n")
	for i := range 2 + int(h[0])%3 {
		body.WriteString(urgentSentences[(int(h[1])+i)%len(urgentSentences)])
		body.WriteString(" ")
	}
	fmt.Fprintf(&body, "\n\n(Reference %s-%s.)\n\nThanks,\n%s", user, id, first)
	text := body.String()
	c := ev.GetContent()
	c.Subject = fmt.Sprintf("Urgent: please answer today (%d)", 1+int(h[2]))
	c.TextBody = text
	c.Snippet = text[:min(len(text), 80)]
	c.SizeBytes = int64(len(text) + 600)
	sum := sha256.Sum256([]byte(c.GetFrom() + "\x00" + c.GetSubject() + "\x00" + text))
	c.ContentHash = hex.EncodeToString(sum[:])
	return ev
}

// LaneName is the lane of ev as it appears in subjects.
func LaneName(ev *eventsv1.MailReceived) string {
	switch ev.GetLane() {
	case mailv1.Lane_LANE_LIVE:
		return "live"
	case mailv1.Lane_LANE_INTERACTIVE:
		return "interactive"
	}
	return "backfill"
}

// MsgID is ev's Nats-Msg-Id, as ingest makes it: user, mailbox and
// provider message id.
func MsgID(ev *eventsv1.MailReceived) string {
	return ev.GetUser() + "/inbox/" + ev.GetProviderMessageId()
}

func names(mails []*eventsv1.MailReceived) []string {
	out := make([]string, len(mails))
	for i, m := range mails {
		out[i] = m.GetMessage()
	}
	return out
}

// AdmissionTokens returns the mean admission cost (prompt tokens + max
// completion tokens) of the classifier's requests for a sample of mails,
// measured by sending them through the classifier's model tier to a fake
// without limits or latency and reading the fake's own count. A TPM of
// RPM × this makes the tokens bind about as much as the requests.
func AdmissionTokens(ctx context.Context, mails []*eventsv1.MailReceived, sample int) (float64, error) {
	fake, url, stop, err := fakeopenai.Start(fakeopenai.Config{Keys: map[string]fakeopenai.Limits{APIKey: {}}})
	if err != nil {
		return 0, err
	}
	defer stop()
	lim := limiter.New(limiter.Config{Keys: []limiter.KeyConfig{{ID: "k", RPM: 1e9, TPM: 1e12}}})
	tier, err := llm.New(llm.Config{BaseURL: url + "/v1", Model: "gpt-4o-mini", Keys: []llm.Key{{ID: "k", Secret: APIKey}}, Limiter: lim})
	if err != nil {
		return 0, err
	}
	step := max(1, len(mails)/max(sample, 1))
	for i := 0; i < len(mails); i += step {
		ev := mails[i]
		if _, err := tier.Classify(ctx, classify.Request{User: ev.GetUser(), Lane: classify.LaneBackfill, Taxonomy: classify.DefaultTaxonomy(), Message: protoconv.Message(ev.GetContent())}); err != nil {
			return 0, fmt.Errorf("benchmark: measuring admission tokens: %w", err)
		}
	}
	st := fake.Stats().Keys[APIKey]
	if st.Admitted == 0 {
		return 0, fmt.Errorf("benchmark: measuring admission tokens: no request admitted")
	}
	return float64(st.AdmittedTokens) / float64(st.Admitted), nil
}
