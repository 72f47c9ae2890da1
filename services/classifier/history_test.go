package classifier_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"mailroom.dev/fakes/fakeopenai"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/testenv"
	"mailroom.dev/services/classifier"
)

// TestGetLimitsHistory sends mail through a model that answers two 429s:
// GetLimits' history, sampled every 100 ms here, counts every answer and
// both 429s for the key and model, oldest first; history_since returns
// only what is newer; a user who is not an admin gets the lanes and the
// backlog of each snapshot, not the keys.
func TestGetLimitsHistory(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{}, func(c *classifier.Config) {
		c.LimitsHistoryInterval = 100 * time.Millisecond
		c.OpenAIBatch = "off"
	})
	e := startWith(t, testenv.NATS(t), "", tune)
	c, _ := client(t, e)
	admin := e.auth.Token("root", true)

	fake.Inject(fakeopenai.RateLimitStorm(50*time.Millisecond), 2)
	evs := personal("ada", 6)
	for _, ev := range evs {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	classifiedInStream(t, e, len(evs))

	var resp *classifierv1.GetLimitsResponse
	var answers, limited int64
	var sentPerMinute float64
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		resp, err = c.GetLimits(as(t, admin), &classifierv1.GetLimitsRequest{HistorySince: timestamppb.New(time.Unix(0, 0))})
		if err != nil {
			t.Fatal(err)
		}
		answers, limited, sentPerMinute = 0, 0, 0
		for _, s := range resp.GetHistory() {
			for _, k := range s.GetKeys() {
				answers += k.GetRequests()
				limited += k.GetRateLimited()
				sentPerMinute = max(sentPerMinute, k.GetRequestsUsedPerMinute())
			}
		}
		if answers >= int64(len(evs))+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Six mails, two of them refused once: eight answers, two 429s.
	if answers != int64(len(evs))+2 || limited != 2 || sentPerMinute <= 0 {
		t.Fatalf("history counts %d answers, %d 429s, a peak of %v requests a minute; want %d, 2, above 0", answers, limited, sentPerMinute, len(evs)+2)
	}
	h := resp.GetHistory()
	if len(h) < 2 {
		t.Fatalf("history has %d snapshots, want several", len(h))
	}
	for i, s := range h {
		if i > 0 && !s.GetTime().AsTime().After(h[i-1].GetTime().AsTime()) {
			t.Fatalf("snapshot %d at %v is not after %v: want oldest first", i, s.GetTime().AsTime(), h[i-1].GetTime().AsTime())
		}
		if len(s.GetLanes()) != 3 || s.GetLanes()[0].GetLane() != mailv1.Lane_LANE_INTERACTIVE {
			t.Fatalf("snapshot %d lanes = %v, want interactive, live, backfill", i, s.GetLanes())
		}
		for _, k := range s.GetKeys() {
			if k.GetModel() != "gpt-4o-mini" || k.GetRequestsPerMinute() <= 0 || strings.Contains(k.GetKey(), fakeKey) {
				t.Fatalf("snapshot %d key = %v, want the model's limits, the key masked", i, k)
			}
		}
	}

	// A poller asks only for what came after the last snapshot it has.
	since := h[len(h)-2].GetTime()
	newer, err := c.GetLimits(as(t, admin), &classifierv1.GetLimitsRequest{HistorySince: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(newer.GetHistory()) == 0 || len(newer.GetHistory()) >= len(h) {
		t.Errorf("history since the last but one = %d snapshots, want some and fewer than %d", len(newer.GetHistory()), len(h))
	}
	for _, s := range newer.GetHistory() {
		if !s.GetTime().AsTime().After(since.AsTime()) {
			t.Errorf("history since %v holds a snapshot of %v", since.AsTime(), s.GetTime().AsTime())
		}
	}
	if plain, err := c.GetLimits(as(t, admin), &classifierv1.GetLimitsRequest{}); err != nil || len(plain.GetHistory()) != 0 {
		t.Errorf("GetLimits without history_since = %d snapshots, %v; want none", len(plain.GetHistory()), err)
	}
	future := timestamppb.New(time.Now().Add(time.Hour))
	if none, err := c.GetLimits(as(t, admin), &classifierv1.GetLimitsRequest{HistorySince: future}); err != nil || len(none.GetHistory()) != 0 {
		t.Errorf("history since an hour ahead = %v, %v; want none", len(none.GetHistory()), err)
	}
	bad := &timestamppb.Timestamp{Seconds: 1, Nanos: -5}
	if _, err := c.GetLimits(as(t, admin), &classifierv1.GetLimitsRequest{HistorySince: bad}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "history_since") {
		t.Errorf("GetLimits with an invalid history_since: %v, want InvalidArgument naming it", err)
	}

	// A user sees the lanes and the backlog over time, not the keys.
	mine, err := c.GetLimits(as(t, e.auth.Token("ada", false)), &classifierv1.GetLimitsRequest{HistorySince: timestamppb.New(time.Unix(0, 0))})
	if err != nil {
		t.Fatal(err)
	}
	if len(mine.GetHistory()) == 0 {
		t.Fatal("a user's limits have no history")
	}
	for _, s := range mine.GetHistory() {
		if len(s.GetKeys()) != 0 || len(s.GetLanes()) != 3 {
			t.Fatalf("a user's snapshot = %v, want lanes and no keys", s)
		}
	}
}

// TestGetLimitsBacklog: mail held by an exhausted budget waits in the work
// stream; GetLimits and its history count it in the backlog.
func TestGetLimitsBacklog(t *testing.T) {
	_, tune := withModel(t, fakeopenai.Config{}, func(c *classifier.Config) {
		c.CreditUSD = 0.0001
		c.LimitsHistoryInterval = 100 * time.Millisecond
		c.OpenAIBatch = "off"
	})
	e := startWith(t, testenv.NATS(t), "", tune)
	c, _ := client(t, e)
	for _, ev := range personal("ada", 4) {
		publish(t, e, ev, "inbox/"+ev.GetProviderMessageId())
	}
	var resp *classifierv1.GetLimitsResponse
	var last int64
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		resp, err = c.GetLimits(as(t, e.auth.Token("ada", false)), &classifierv1.GetLimitsRequest{HistorySince: timestamppb.New(time.Unix(0, 0))})
		if err != nil {
			t.Fatal(err)
		}
		if h := resp.GetHistory(); len(h) > 0 {
			last = h[len(h)-1].GetBacklog()
		}
		if (resp.GetBudget().GetExhausted() && resp.GetBacklog() > 0 && last > 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	held := int64(waitPending(t, e))
	if !resp.GetBudget().GetExhausted() || resp.GetBacklog() < 1 || resp.GetBacklog() > 4 || last < 1 {
		t.Fatalf("budget exhausted %v, backlog %d, last snapshot's %d; want exhausted and the held mail (%d ack pending) counted",
			resp.GetBudget().GetExhausted(), resp.GetBacklog(), last, held)
	}
	if resp.GetBacklog() < held {
		t.Errorf("backlog %d is less than the %d messages held", resp.GetBacklog(), held)
	}
}

// TestListDeadLettersOfEveryUser: with the parent users/-, an admin lists
// every user's dead letters, each named under its user, and replays one by
// that name; a user who is not an admin is refused.
func TestListDeadLettersOfEveryUser(t *testing.T) {
	fake, tune := withModel(t, fakeopenai.Config{}, func(c *classifier.Config) {
		c.OpenAIMaxAttempts = 1
		c.OpenAIBatch = "off"
	})
	e := startWith(t, testenv.NATS(t), "", tune)
	c, _ := client(t, e)
	admin := as(t, e.auth.Token("root", true))

	fake.Inject(fakeopenai.ServerError, 2)
	ada, bob := personal("ada", 1)[0], personal("bob", 1)[0]
	publish(t, e, ada, "inbox/ada-"+ada.GetProviderMessageId())
	publish(t, e, bob, "inbox/bob-"+bob.GetProviderMessageId())

	var list *classifierv1.ListDeadLettersResponse
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		list, err = c.ListDeadLetters(admin, &classifierv1.ListDeadLettersRequest{Parent: "users/-"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.GetDeadLetters()) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	byMessage := map[string]*classifierv1.DeadLetter{}
	for _, d := range list.GetDeadLetters() {
		byMessage[d.GetMessage()] = d
	}
	for _, ev := range []struct{ user, message string }{{"ada", ada.GetMessage()}, {"bob", bob.GetMessage()}} {
		d := byMessage[ev.message]
		if d == nil || !strings.HasPrefix(d.GetName(), "users/"+ev.user+"/deadLetters/") {
			t.Fatalf("users/- lists %v; want %s's dead letter named under users/%s", list.GetDeadLetters(), ev.message, ev.user)
		}
	}

	// One per page, with page tokens, across users.
	first, err := c.ListDeadLetters(admin, &classifierv1.ListDeadLettersRequest{Parent: "users/-", PageSize: 1})
	if err != nil || len(first.GetDeadLetters()) != 1 || first.GetNextPageToken() == "" {
		t.Fatalf("first page = %v, %v; want one and a token", first, err)
	}
	second, err := c.ListDeadLetters(admin, &classifierv1.ListDeadLettersRequest{Parent: "users/-", PageSize: 1, PageToken: first.GetNextPageToken()})
	if err != nil || len(second.GetDeadLetters()) != 1 || second.GetDeadLetters()[0].GetName() == first.GetDeadLetters()[0].GetName() {
		t.Fatalf("second page = %v, %v; want the other one", second, err)
	}

	// A user is refused the list of everyone's, and still lists its own.
	adaCtx := as(t, e.auth.Token("ada", false))
	if _, err := c.ListDeadLetters(adaCtx, &classifierv1.ListDeadLettersRequest{Parent: "users/-"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ada listing users/-: %v, want PermissionDenied", err)
	}
	mine, err := c.ListDeadLetters(adaCtx, &classifierv1.ListDeadLettersRequest{Parent: "users/me"})
	if err != nil || len(mine.GetDeadLetters()) != 1 || mine.GetDeadLetters()[0].GetName() != byMessage[ada.GetMessage()].GetName() {
		t.Errorf("ada's own = %v, %v; want her one dead letter under the same name", mine.GetDeadLetters(), err)
	}
	if _, err := c.ListDeadLetters(adaCtx, &classifierv1.ListDeadLettersRequest{Parent: "users/-/x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("parent users/-/x: %v, want InvalidArgument", err)
	}

	// The admin replays bob's by the name the list gave.
	resp, err := c.ReplayDeadLetter(admin, &classifierv1.ReplayDeadLetterRequest{Name: byMessage[bob.GetMessage()].GetName()})
	if err != nil || resp.GetMessage() != bob.GetMessage() {
		t.Fatalf("replay = %v, %v", resp, err)
	}
	if got := classifiedInStream(t, e, 1); got[bob.GetMessage()] == nil {
		t.Fatal("bob's replayed message was not classified")
	}
	after, err := c.ListDeadLetters(admin, &classifierv1.ListDeadLettersRequest{Parent: "users/-"})
	if err != nil || len(after.GetDeadLetters()) != 1 || after.GetDeadLetters()[0].GetMessage() != ada.GetMessage() {
		t.Errorf("after the replay users/- lists %v, %v; want ada's alone", after.GetDeadLetters(), err)
	}
}
