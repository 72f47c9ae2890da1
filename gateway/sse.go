package gateway

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// mimeEventStream is the media type of server-sent events.
const mimeEventStream = "text/event-stream"

// sseMarshaler answers the streaming routes (…:watch) as server-sent events
// to a client that sends "Accept: text/event-stream", as a browser's
// EventSource does. Each response of the stream is one event whose data is
// the response's JSON (what a newline-delimited JSON line carries under
// "result"), with "id:" set to its cursor when it has one, so that
// EventSource's automatic reconnection resumes where it stopped (the
// gateway reads Last-Event-ID back as the cursor). Heartbeats are events of
// type "heartbeat", and an error that ends the stream an event of type
// "error" holding the google.rpc.Status. Anything that is not a stream
// chunk (an error answered before the stream began) is plain JSON.
type sseMarshaler struct {
	runtime.Marshaler
}

// cursored and beating are the responses whose cursor and heartbeat flag
// the events carry (WatchMessagesResponse).
type (
	cursored interface{ GetCursor() string }
	beating  interface{ GetHeartbeat() bool }
)

// chunk returns the payload of a stream chunk (grpc-gateway hands each one
// over as {"result": …} or {"error": …}) and which it is.
func chunk(v any) (payload any, isError, ok bool) {
	switch c := v.(type) {
	case map[string]any:
		if r, ok := c["result"]; ok && len(c) == 1 {
			return r, false, true
		}
	case map[string]proto.Message:
		if e, ok := c["error"]; ok && len(c) == 1 {
			return e, true, true
		}
	}
	return nil, false, false
}

// ContentType implements runtime.Marshaler: JSON for whatever is not a
// stream chunk.
func (m sseMarshaler) ContentType(v any) string {
	if _, _, ok := chunk(v); ok {
		return mimeEventStream
	}
	return m.Marshaler.ContentType(v)
}

// StreamContentType implements runtime.StreamContentType.
func (m sseMarshaler) StreamContentType(any) string { return mimeEventStream }

// Delimiter implements runtime.Delimited: a blank line ends an event.
func (m sseMarshaler) Delimiter() []byte { return []byte("\n\n") }

// Marshal implements runtime.Marshaler.
func (m sseMarshaler) Marshal(v any) ([]byte, error) {
	payload, isError, ok := chunk(v)
	if !ok {
		return m.Marshaler.Marshal(v)
	}
	data, err := m.Marshaler.Marshal(payload)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	switch {
	case isError:
		b.WriteString("event: error\n")
	default:
		if h, ok := payload.(beating); ok && h.GetHeartbeat() {
			b.WriteString("event: heartbeat\n")
		}
		if c, ok := payload.(cursored); ok && c.GetCursor() != "" {
			b.WriteString("id: " + c.GetCursor() + "\n")
		}
	}
	// JSON from protojson may hold newlines; each line of data is a data field.
	for line := range strings.SplitSeq(strings.TrimRight(string(data), "\n"), "\n") {
		b.WriteString("data: " + line + "\n")
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// lastEventID turns the Last-Event-ID header that a reconnecting
// EventSource sends into the cursor of a watch that names none, so that a
// browser resumes without knowing about cursors.
func lastEventID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("Last-Event-ID"); id != "" && r.Method == http.MethodGet &&
			strings.HasSuffix(r.URL.Path, "/messages:watch") && !r.URL.Query().Has("cursor") {
			q := r.URL.Query()
			q.Set("cursor", id)
			r.URL.RawQuery = q.Encode()
		}
		next.ServeHTTP(w, r)
	})
}

// streams ends the gateway's streams when the server shuts down: a watch
// never goes idle, so without this a drain would wait out its whole
// timeout for them. A client of a watch reconnects with its last cursor.
type streams struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newStreams() *streams {
	ctx, cancel := context.WithCancel(context.Background())
	return &streams{ctx: ctx, cancel: cancel}
}

// wrap cancels the context of a streaming request (…:watch) at shutdown.
func (s *streams) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ":watch") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stop := context.AfterFunc(s.ctx, cancel)
		defer stop()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// streamError is grpc-gateway's stream error handler, except that a stream
// that the gateway's shutdown ended says so (Unavailable) instead of
// "context canceled": its client should reconnect with its last cursor.
func (g *Gateway) streamError(ctx context.Context, err error) *status.Status {
	if g.draining.Load() && status.Code(err) == codes.Canceled {
		return status.New(codes.Unavailable, "the gateway is shutting down: reconnect, resuming from the last cursor")
	}
	return runtime.DefaultStreamErrorHandler(ctx, err)
}
