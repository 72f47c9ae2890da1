package e2e_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"mailroom.dev/gateway"
)

// ownGateway is a gateway of the test's own in front of the suite's
// services, which the test can stop mid-stream.
type ownGateway struct {
	url  string
	stop func()
}

func startGateway(t *testing.T, e *env, addr string) *ownGateway {
	t.Helper()
	cfg := e.suite.GatewayConfig
	cfg.ShutdownTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, e.suite.GatewayLogger())
	if err != nil {
		cancel()
		t.Fatalf("gateway.New: %v", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx, lis) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway.Run: %v", err)
		}
		gw.Close()
	}
	t.Cleanup(stop)
	return &ownGateway{url: "http://" + lis.Addr().String(), stop: stop}
}

// watchEvent is one event of GET …/messages:watch, from either encoding.
type watchEvent struct {
	Message   map[string]any `json:"message"`
	Cursor    string         `json:"cursor"`
	Heartbeat bool           `json:"heartbeat"`
	// ID is the server-sent event's id (SSE only).
	ID string `json:"-"`
	// Err is the google.rpc.Status that ended the stream, if one did.
	Err string `json:"-"`
}

// openWatch starts GET base/v1/users/me/messages:watch as key and sends
// its events on the channel, which closes when the stream ends. sse asks
// for server-sent events instead of newline-delimited JSON.
func openWatch(t *testing.T, base, key, cursor string, sse bool) <-chan watchEvent {
	t.Helper()
	u := base + "/v1/users/me/messages:watch"
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if sse {
		req.Header.Set("Accept", "text/event-stream")
		if cursor != "" {
			req.Header.Set("Last-Event-ID", cursor) // as EventSource resumes
		}
	} else if cursor != "" {
		req.URL.RawQuery = "cursor=" + cursor
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("watch: %v", err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("watch answered %d", resp.StatusCode)
	}
	wantType := "application/json"
	if sse {
		wantType = "text/event-stream"
	}
	if ct := resp.Header.Get("Content-Type"); ct != wantType {
		t.Errorf("watch Content-Type = %q, want %q", ct, wantType)
	}
	out := make(chan watchEvent, 100)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var id, event, data string
		for sc.Scan() {
			line := sc.Text()
			if !sse {
				if strings.TrimSpace(line) == "" {
					continue
				}
				var msg struct {
					Result *watchEvent      `json:"result"`
					Error  *json.RawMessage `json:"error"`
				}
				if err := json.Unmarshal([]byte(line), &msg); err != nil || (msg.Result == nil && msg.Error == nil) {
					t.Errorf("watch line %q: %v", line, err)
					return
				}
				if msg.Error != nil {
					out <- watchEvent{Err: string(*msg.Error)}
					return
				}
				out <- *msg.Result
				continue
			}
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			case line == "" && event == "error":
				out <- watchEvent{Err: data}
				return
			case line == "":
				var ev watchEvent
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Errorf("event data %q: %v", data, err)
					return
				}
				if event == "error" {
					t.Errorf("watch error event: %s", data)
					return
				}
				if (event == "heartbeat") != ev.Heartbeat || id != ev.Cursor {
					t.Errorf("event %q id %q does not match its data %s", event, id, data)
				}
				ev.ID = id
				out <- ev
				id, event, data = "", "", ""
			}
		}
	}()
	return out
}

// numbered is a newsletter (the rules tier classifies it) numbered i.
func numbered(i int) string {
	m := fmt.Sprintf("From: \"Watch Weekly\" <news@watch.example>\r\nTo: ada@example.com\r\n"+
		"Subject: Watch Weekly #%d\r\nDate: %s\r\nMessage-ID: <ww%d@watch.example>\r\n"+
		"List-Unsubscribe: <https://watch.example/unsubscribe>\r\nContent-Type: text/plain\r\n\r\nIssue %d.\r\n",
		i, time.Now().Add(-time.Duration(i)*time.Minute).Format(time.RFC1123Z), i, i)
	return base64.StdEncoding.EncodeToString([]byte(m))
}

// TestWatchAcrossGatewayRestart follows ada's messages through a gateway
// that is stopped mid-stream and replaced while mail keeps arriving: the
// client resumes from its last cursor (first as newline-delimited JSON,
// then as server-sent events with Last-Event-ID) and sees every message
// classified exactly once, no change twice, and none of bob's mail.
func TestWatchAcrossGatewayRestart(t *testing.T) {
	e := start(t, options{})
	ada, bob := e.user("ada"), e.user("bob")
	inbox := e.mailbox("ada", ada, "inbox")
	bobs := e.mailbox("bob", bob, "inbox")
	importOne := func(mb, key string, i int) {
		e.must(200, "POST", "/v1/"+mb+"/messages:import", key, map[string]any{"messages": []map[string]any{{"raw": numbered(i)}}})
	}
	const total = 12

	type change struct{ name, state string }
	seen := map[change]int{}
	classified := map[string]int{}
	cursors := map[string]bool{}
	var cursor string
	var ended string
	take := func(ev watchEvent) {
		if ev.Err != "" {
			ended = ev.Err
			return
		}
		cursor = ev.Cursor
		if ev.Heartbeat {
			return
		}
		if cursors[ev.Cursor] {
			t.Errorf("cursor %s delivered twice", ev.Cursor)
		}
		cursors[ev.Cursor] = true
		name, _ := ev.Message["name"].(string)
		if !strings.HasPrefix(name, "users/ada/") {
			t.Errorf("ada's stream carried %s", name)
		}
		state, _ := ev.Message["state"].(string)
		seen[change{name, state}]++
		if state == "MESSAGE_STATE_CLASSIFIED" {
			classified[name]++
		}
	}
	// until reads events until cond holds, or fails after a minute.
	until := func(events <-chan watchEvent, what string, cond func() bool) bool {
		deadline := time.After(time.Minute)
		for !cond() {
			select {
			case ev, ok := <-events:
				if !ok {
					return false
				}
				take(ev)
			case <-deadline:
				t.Fatalf("%s: not within a minute; classified %d of %d", what, len(classified), total)
			}
		}
		return true
	}

	gw := startGateway(t, e, "127.0.0.1:0")
	events := openWatch(t, gw.url, ada, "", false)
	until(events, "the stream's first cursor", func() bool { return cursor != "" })
	for i := range total / 2 {
		importOne(inbox, ada, i)
	}
	importOne(bobs, bob, 100)
	until(events, "half of the mail", func() bool { return len(classified) >= total/4 })

	// The gateway goes away mid-stream; mail keeps arriving meanwhile.
	gw.stop()
	for ev := range events {
		take(ev) // what the gateway sent before it stopped is the client's too
	}
	if !strings.Contains(ended, "shutting down") {
		t.Errorf("the stream ended with %q, want the gateway's shutdown", ended)
	}
	for i := total / 2; i < total; i++ {
		importOne(inbox, ada, i)
	}
	gw2 := startGateway(t, e, "127.0.0.1:0")
	events = openWatch(t, gw2.url, ada, cursor, true)
	until(events, "every mail classified", func() bool { return len(classified) == total })

	for c, n := range seen {
		if n != 1 {
			t.Errorf("%s %s delivered %d times", c.name, c.state, n)
		}
	}
	for name, n := range classified {
		if n != 1 {
			t.Errorf("%s classified %d times in the stream", name, n)
		}
	}
}
