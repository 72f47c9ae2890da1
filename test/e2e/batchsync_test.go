package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"mailroom.dev/fakes/fakegmail"
	"mailroom.dev/fakes/fakeopenai"
	eventsv1 "mailroom.dev/gen/go/mailroom/events/v1"
	"mailroom.dev/platform/eventbus"
	"mailroom.dev/platform/testenv"
)

// TestSyncShowsMailWaitingInABatch runs a Gmail backfill big enough for
// the Batch API through the whole suite, on Postgres and the NATS 2.9
// server, against the fake OpenAI's Files and Batch APIs: while the batch
// is in progress the sync job shows its mail as batched (REST and the
// CLI), and afterwards none is batched and all is classified. A batch that
// expires part-way sends the rest of its mail to the realtime path, and
// batched returns to 0 as well.
func TestSyncShowsMailWaitingInABatch(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	build(t, bin, "../../cmd/mailroom", "mailroom", "")
	for _, tc := range []struct {
		name string
		fate *fakeopenai.BatchFate
	}{
		{"completed", nil},
		{"expired", &fakeopenai.BatchFate{Status: "expired", Done: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			batchSync(t, filepath.Join(bin, "mailroom"), tc.fate)
		})
	}
}

func batchSync(t *testing.T, cli string, fate *fakeopenai.BatchFate) {
	const (
		openaiKey = "sk-batch-sync-test-key-0000000000"
		mails     = 40
	)
	fake, fakeURL, stop, err := fakeopenai.Start(fakeopenai.Config{
		Keys:  map[string]fakeopenai.Limits{openaiKey: {RPM: 60000, TPM: 10_000_000}},
		Batch: fakeopenai.BatchConfig{Validation: 200 * time.Millisecond, Completion: 6 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if fate != nil {
		fake.InjectBatch(*fate)
	}
	gmail := fakegmail.New()
	defer gmail.Close()
	acct := gmail.AddAccount("ada@gmail.example")
	for i := range mails {
		acct.Add([]byte(personalRaw(i)))
	}
	natsURL, prefix := testenv.ExternalNATS(t)
	e := start(t, options{databaseURL: testenv.PostgresURL(t), natsURL: natsURL, natsPrefix: prefix, extra: map[string]string{
		"OPENAI_API_KEY":                  openaiKey,
		"OPENAI_BASE_URL":                 fakeURL + "/v1",
		"OPENAI_RPM":                      "60000",
		"OPENAI_TPM":                      "10000000",
		"OPENAI_BATCH":                    "auto",
		"OPENAI_BATCH_THRESHOLD":          "20",
		"OPENAI_BATCH_WINDOW":             "1s",
		"OPENAI_BATCH_POLL":               "100ms",
		"MAILROOM_LEARN_SENDERS":          "false",
		"GOOGLE_OAUTH_CLIENT_ID":          gmail.ClientID,
		"GOOGLE_OAUTH_CLIENT_SECRET":      gmail.ClientSecret,
		"MAILROOM_PUBLIC_URL":             "http://mailroom.invalid",
		"MAILROOM_GOOGLE_AUTH_URL":        gmail.AuthURL,
		"MAILROOM_GOOGLE_TOKEN_URL":       gmail.TokenURL,
		"MAILROOM_GMAIL_ENDPOINT":         gmail.URL,
		"MAILROOM_GMAIL_QUOTA_PER_MINUTE": "1000000",
		"MAILROOM_SYNC_INTERVAL":          "0",
		"MAILROOM_RETENTION_DAYS":         "0",
	}})
	ada := e.user("ada")
	gm := e.must(200, "POST", "/v1/users/ada/mailboxes?mailboxId=gmail", ada, map[string]any{"provider": "GMAIL"})
	browse(t, e.url, gm["authorizationUrl"].(string), nil)
	job := e.must(200, "POST", "/v1/users/ada/mailboxes/gmail:sync", ada, map[string]any{})
	name := job["name"].(string)

	progress := func() (published, classified, batched int64) {
		j := e.must(200, "GET", "/v1/"+name, ada, nil)
		p, _ := j["progress"].(map[string]any)
		n := func(k string) int64 { v, _ := strconv.ParseInt(fmt.Sprint(p[k]), 10, 64); return v }
		return n("published"), n("classified"), n("batched")
	}
	// While the batch is in progress, the job shows its mail in it.
	var seen int64
	waitFor(t, 60*time.Second, "mail waiting in a batch", func() bool {
		published, classified, batched := progress()
		if classified+batched > published {
			t.Errorf("classified %d + batched %d > published %d", classified, batched, published)
		}
		seen = batched
		return batched > 0
	})
	out := runCLI(t, cli, e.url, ada, "sync", "get", name[strings.LastIndex(name, "/")+1:])
	t.Logf("while the batch runs (REST said batched %d), mailroom sync get printed:\n%s", seen, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "CLASSIFIED") || !strings.Contains(lines[0], "BATCHED") {
		t.Fatalf("sync get printed %q; want a header with CLASSIFIED and BATCHED and one row", out)
	}
	cols := regexp.MustCompile(`\s+`).Split(strings.TrimSpace(lines[1]), -1)
	if b, err := strconv.Atoi(cols[8]); err != nil || b <= 0 {
		t.Errorf("sync get's BATCHED column = %q; want the mail waiting in the batch", cols[8])
	}

	// After the batch: nothing batched, everything classified.
	var published, classified, batched int64
	waitFor(t, 90*time.Second, "every mail classified", func() bool {
		published, classified, batched = progress()
		return published == mails && classified == mails && batched == 0
	})
	time.Sleep(500 * time.Millisecond) // a late or repeated event would show now
	if p, c, b := progress(); p != mails || c != mails || b != 0 {
		t.Errorf("after the batch: published %d, classified %d, batched %d; want %d, %d, 0", p, c, b, mails, mails)
	}
	e.classified(ada, "ada", mails)
	st := fake.BatchStats()
	realtime := fake.Stats().Keys[openaiKey].Requests
	t.Logf("batches %d (%d requests, %d expired), realtime requests %d", st.Batches, st.Requests, st.Expired, realtime)
	if st.Batches == 0 {
		t.Error("no batch was created")
	}
	// What the classifier told ingest, in the mail.batch stream: every
	// mail entered a batch; the expired batch's unfinished mail left it.
	entered, left := batchMoves(t, natsURL, prefix)
	wantLeft := 0
	if fate != nil {
		wantLeft = mails - fate.Done
	}
	if entered != mails || left != wantLeft {
		t.Errorf("mail.batch events: %d entered, %d left; want %d, %d", entered, left, mails, wantLeft)
	}
	if fate == nil {
		if realtime != 0 {
			t.Errorf("%d realtime requests; want every mail answered by its batch", realtime)
		}
		return
	}
	// The expired batch finished fate.Done of its mail; the rest, and only
	// that, went to the realtime path.
	if st.Batches != 1 || st.Expired != 1 || realtime != mails-int64(fate.Done) {
		t.Errorf("batch stats %+v, %d realtime requests; want one expired batch and its %d unfinished mails sent in realtime", st, realtime, mails-fate.Done)
	}
}

// batchMoves counts the messages of the mail.batch events that entered a
// batch and that left one, once each (de-duplicated by message).
func batchMoves(t *testing.T, url, prefix string) (entered, left int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, js, err := eventbus.Connect(url, "e2e-batch-moves")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	topo := eventbus.Topology{Prefix: prefix}
	stream, err := js.Stream(ctx, topo.BatchStreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	in, out := map[string]bool{}, map[string]bool{}
	for range info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var ev eventsv1.MailBatched
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		for _, m := range ev.GetMessages() {
			if ev.GetState() == eventsv1.MailBatched_STATE_ENTERED {
				in[m] = true
			} else {
				out[m] = true
			}
		}
	}
	return len(in), len(out)
}

// personalRaw is an RFC 822 personal mail, different for each i, that
// only the model classifies (no rule matches it).
func personalRaw(i int) string {
	return fmt.Sprintf("From: Grace Hopper <grace@example.org>\r\nTo: Ada Lovelace <ada@example.com>\r\n"+
		"Subject: Dinner on Friday? (%d)\r\nDate: %s\r\nMessage-ID: <batch-sync-%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Hi Ada,\r\n\r\nare you free for dinner on Friday? The usual place at %d.\r\n\r\nGrace\r\n",
		i, time.Now().Add(-time.Duration(i)*time.Minute).Format(time.RFC1123Z), i, 7+i)
}

// runCLI runs the mailroom CLI against gateway with key and returns its
// standard output.
func runCLI(t *testing.T, bin, gateway, key string, args ...string) string {
	t.Helper()
	r := (&cliEnv{t: t, work: t.TempDir(), bin: bin, env: append(withoutVars(os.Environ(), "MAILROOM", "MAILROOM_URL", "MAILROOM_KEY", "XDG_CONFIG_HOME"),
		"MAILROOM_URL="+gateway, "MAILROOM_KEY="+key, "XDG_CONFIG_HOME="+t.TempDir(), "NO_COLOR=1")}).run("", nil, args...)
	if r.code != 0 {
		t.Fatalf("mailroom %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}
