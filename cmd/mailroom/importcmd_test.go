package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAPI is the part of the REST API that `mailroom import` uses.
type fakeAPI struct {
	mu       sync.Mutex
	mailbox  bool
	batches  [][]string
	auth     []string
	creation string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/users/me/mailboxes/archive":
		if !f.mailbox {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":5,"message":"mailbox users/ada/mailboxes/archive does not exist"}`))
			return
		}
		_, _ = w.Write([]byte(`{"provider":"PROVIDER_IMPORT"}`))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/users/me/mailboxes":
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.creation = r.URL.Query().Get("mailboxId") + ":" + body["provider"]
		f.mailbox = true
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/users/me/mailboxes/archive/messages:import":
		var req struct {
			Messages []struct{ Raw []byte } `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var subjects []string
		for _, m := range req.Messages {
			if bytes.Contains(m.Raw, []byte("Subject: broken")) {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"code":3,"message":"messages[0].raw: is not an RFC 822 message"}`))
				return
			}
			for _, line := range strings.Split(string(m.Raw), "\n") {
				if s, ok := strings.CutPrefix(line, "Subject: "); ok {
					subjects = append(subjects, strings.TrimSpace(s))
				}
			}
			if bytes.Contains(m.Raw, []byte("\n>From the start")) || !bytes.Contains(m.Raw, []byte("Subject")) {
				subjects = append(subjects, "BAD ESCAPE OR SPLIT")
			}
		}
		f.batches = append(f.batches, subjects)
		_, _ = w.Write([]byte(`{"messages":[]}`))
	default:
		http.NotFound(w, r)
	}
}

func TestImport(t *testing.T) {
	api := &fakeAPI{}
	srv := httptest.NewServer(api)
	defer srv.Close()
	t.Setenv("MAILROOM_URL", srv.URL)
	t.Setenv("MAILROOM_KEY", "mr_test_key")

	dir := t.TempDir()
	mbox := "From alice@example.com Mon Jun  2 10:00:00 2025\n" +
		"From: alice@example.com\nSubject: one\n\nHello.\n>From the start, quoted.\n\n" +
		"From bob@example.com Mon Jun  2 11:00:00 2025\n" +
		"From: bob@example.com\nSubject: broken\n\nbad\n\n" +
		"From carol@example.com Mon Jun  2 12:00:00 2025\n" +
		"From: carol@example.com\nSubject: three\n\nFrom here on, a line that is no separator.\n"
	if err := os.WriteFile(filepath.Join(dir, "a.mbox"), []byte(mbox), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "maildir", "cur"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "maildir", "cur", "1.eml"), []byte("From: dan@example.com\r\nSubject: four\r\n\r\nHi.\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".hidden"), []byte("From: x@example.com\r\nSubject: hidden\r\n\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"import", "-mailbox", "archive", "-batch", "2", dir}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("import: %v\nstderr: %s", err, stderr.String())
	}
	if api.creation != "archive:IMPORT" {
		t.Errorf("mailbox creation = %q, want archive:IMPORT", api.creation)
	}
	var got []string
	for _, b := range api.batches {
		got = append(got, strings.Join(b, ","))
	}
	// Batches of two; the batch with the broken mail is refused whole and
	// sent again one by one, which skips only the broken one.
	if want := []string{"one", "three,four"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("batches = %q, want %q", got, want)
	}
	for _, a := range api.auth {
		if a != "Bearer mr_test_key" {
			t.Errorf("Authorization = %q", a)
		}
	}
	if !strings.Contains(stdout.String(), "imported 3 messages into users/me/mailboxes/archive (1 skipped") {
		t.Errorf("stdout = %q", stdout.String())
	}
	if e := stderr.String(); !strings.Contains(e, "100%") || !strings.Contains(e, "[###") || !strings.Contains(e, "is not an RFC 822 message") {
		t.Errorf("stderr has no progress bar or skip note: %q", e)
	}

	// Without a key, nothing is sent.
	t.Setenv("MAILROOM_KEY", "")
	if err := run(context.Background(), []string{"import", dir}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "MAILROOM_KEY") {
		t.Errorf("without a key: %v", err)
	}
}
