package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	"mailroom.dev/platform/config"
	"mailroom.dev/platform/grpcconn"
)

// consentFake is ingest's CompleteAuthorization, answering by state.
type consentFake struct {
	ingestv1.UnimplementedIngestServiceServer
	got chan *ingestv1.CompleteAuthorizationRequest
}

func (f *consentFake) CompleteAuthorization(_ context.Context, req *ingestv1.CompleteAuthorizationRequest) (*ingestv1.CompleteAuthorizationResponse, error) {
	f.got <- req
	switch req.GetState() {
	case "good":
		return &ingestv1.CompleteAuthorizationResponse{Mailbox: &ingestv1.Mailbox{
			Name: "users/ada/mailboxes/gmail", Address: "<ada>@gmail.example", State: ingestv1.MailboxState_MAILBOX_STATE_ACTIVE}}, nil
	case "used":
		return nil, status.Error(codes.InvalidArgument, "state: is unknown or was used already")
	case "refused":
		return nil, status.Error(codes.FailedPrecondition, "Google did not grant access to mailbox users/ada/mailboxes/gmail (access_denied)")
	}
	return nil, status.Error(codes.Internal, "database exploded at 10.0.0.7")
}

func TestGoogleCallback(t *testing.T) {
	fake := &consentFake{got: make(chan *ingestv1.CompleteAuthorizationRequest, 1)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ingestv1.RegisterIngestServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cfg := Config{Addrs: grpcconn.Addrs{Auth: "127.0.0.1:1", Ingest: lis.Addr().String(), Classifier: "127.0.0.1:1", Store: "127.0.0.1:1"}}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	for _, tt := range []struct {
		query      string
		wantStatus int
		want       []string
		notWant    []string
		wantReq    *ingestv1.CompleteAuthorizationRequest
	}{
		{"state=good&code=4/abc&scope=x", http.StatusOK,
			[]string{"Gmail connected", "users/ada/mailboxes/gmail", "&lt;ada&gt;@gmail.example"}, []string{"4/abc", "<ada>"},
			&ingestv1.CompleteAuthorizationRequest{State: "good", Code: "4/abc"}},
		{"state=used&code=4/abc", http.StatusBadRequest, []string{"Gmail was not connected", "used already"}, nil, nil},
		{"state=refused&error=access_denied", http.StatusBadRequest, []string{"access_denied"}, nil,
			&ingestv1.CompleteAuthorizationRequest{State: "refused", Error: "access_denied"}},
		{"state=boom&code=x", http.StatusInternalServerError, []string{"went wrong on our side"}, []string{"10.0.0.7", "exploded"}, nil},
	} {
		rec := httptest.NewRecorder()
		g.handleGoogleCallback(rec, httptest.NewRequest(http.MethodGet, "/oauth/google/callback?"+tt.query, nil))
		body := rec.Body.String()
		if rec.Code != tt.wantStatus {
			t.Errorf("%s: status %d, want %d\n%s", tt.query, rec.Code, tt.wantStatus, body)
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %q:\n%s", tt.query, w, body)
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(body, w) {
				t.Errorf("%s: page shows %q", tt.query, w)
			}
		}
		if h := rec.Header(); h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Errorf("%s: headers %v", tt.query, h)
		}
		got := <-fake.got
		if tt.wantReq != nil && (got.GetState() != tt.wantReq.GetState() || got.GetCode() != tt.wantReq.GetCode() || got.GetError() != tt.wantReq.GetError()) {
			t.Errorf("%s: ingest got %v, want %v", tt.query, got, tt.wantReq)
		}
	}
}

// startFake is ingest's StartAuthorization and CompleteAuthorization.
type startFake struct {
	ingestv1.UnimplementedIngestServiceServer
	bound    map[string]string
	complete chan *ingestv1.CompleteAuthorizationRequest
}

func (f *startFake) StartAuthorization(_ context.Context, req *ingestv1.StartAuthorizationRequest) (*ingestv1.StartAuthorizationResponse, error) {
	if _, ok := f.bound[req.GetState()]; ok || req.GetState() != "s1" {
		return nil, status.Error(codes.InvalidArgument, "state: is unknown, was used already or was opened in another browser")
	}
	f.bound[req.GetState()] = req.GetBinding()
	return &ingestv1.StartAuthorizationResponse{GoogleAuthorizationUrl: "https://accounts.google.example/o/oauth2/auth?state=s1"}, nil
}

func (f *startFake) CompleteAuthorization(_ context.Context, req *ingestv1.CompleteAuthorizationRequest) (*ingestv1.CompleteAuthorizationResponse, error) {
	f.complete <- req
	return nil, status.Error(codes.PermissionDenied, "this consent was started in another browser")
}

// TestGoogleStartBindsTheBrowser: the authorization URL's start sets an
// HttpOnly, SameSite cookie holding a random binding, gives ingest the
// same binding and sends the browser to Google; the callback hands the
// cookie's binding to ingest (and none from a browser without it).
func TestGoogleStartBindsTheBrowser(t *testing.T) {
	fake := &startFake{bound: map[string]string{}, complete: make(chan *ingestv1.CompleteAuthorizationRequest, 1)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ingestv1.RegisterIngestServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cfg := Config{Addrs: grpcconn.Addrs{Auth: "127.0.0.1:1", Ingest: lis.Addr().String(), Classifier: "127.0.0.1:1", Store: "127.0.0.1:1"}}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	rec := httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth/google/start?state=s1", nil))
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "https://accounts.google.example/o/oauth2/auth?state=s1" {
		t.Fatalf("start: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteLaxMode || cookies[0].Path != "/oauth/google/" ||
		len(cookies[0].Value) < 40 || cookies[0].Value != fake.bound["s1"] || strings.Contains(cookies[0].Value, "s1") {
		t.Fatalf("start set cookies %v (ingest bound %q)", cookies, fake.bound["s1"])
	}
	// Opened again (another browser): refused, no cookie.
	rec = httptest.NewRecorder()
	g.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/oauth/google/start?state=s1", nil))
	if rec.Code != http.StatusBadRequest || len(rec.Result().Cookies()) != 0 {
		t.Errorf("second start: %d, cookies %v", rec.Code, rec.Result().Cookies())
	}

	for name, withCookie := range map[string]bool{"same browser": true, "another browser": false} {
		req := httptest.NewRequest(http.MethodGet, "/oauth/google/callback?state=s1&code=4/x", nil)
		if withCookie {
			req.AddCookie(cookies[0])
		}
		g.Handler().ServeHTTP(httptest.NewRecorder(), req)
		got := <-fake.complete
		if want := map[bool]string{true: fake.bound["s1"], false: ""}[withCookie]; got.GetBinding() != want {
			t.Errorf("%s: ingest got binding %q, want %q", name, got.GetBinding(), want)
		}
	}
}
