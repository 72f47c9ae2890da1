package classifier_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/grpcconn"
	"mailroom.dev/platform/testenv"
)

func client(t *testing.T, e *env) (classifierv1.ClassifierServiceClient, *grpc.ClientConn) {
	t.Helper()
	cc, err := grpcconn.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return classifierv1.NewClassifierServiceClient(cc), cc
}

// as returns a context calling with token as the bearer credential; an
// empty token sends none.
func as(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	if token == "" {
		return ctx
	}
	return authn.OutgoingToken(ctx, token)
}

const newsletterRaw = "From: Gopher Weekly <editor@gopherweekly.example>\r\n" +
	"To: ada@example.com\r\n" +
	"Subject: Weekly digest\r\n" +
	"List-Unsubscribe: <mailto:unsubscribe@gopherweekly.example>\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"This week in Go.\r\n"

func TestClassifyRPC(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	c, _ := client(t, e)
	ada := e.auth.Token("ada", false)
	admin := e.auth.Token("root", true)
	e.auth.AddAPIKey("mr_adas-api-key", "ada", false)

	ok := []struct {
		name     string
		token    string
		req      *classifierv1.ClassifyRequest
		category string
		rule     string
	}{
		{"raw newsletter, default parent", ada, &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw)}, "newsletters", "list-unsubscribe"},
		{"raw, users/me", ada, &classifierv1.ClassifyRequest{Parent: "users/me", Raw: []byte(newsletterRaw)}, "newsletters", "list-unsubscribe"},
		{"raw, own user", ada, &classifierv1.ClassifyRequest{Parent: "users/ada", Raw: []byte(newsletterRaw)}, "newsletters", "list-unsubscribe"},
		{"raw with LF line ends", ada, &classifierv1.ClassifyRequest{Raw: []byte(strings.ReplaceAll(newsletterRaw, "\r\n", "\n"))}, "newsletters", "list-unsubscribe"},
		{"parts: security notice", ada, &classifierv1.ClassifyRequest{Subject: "Security alert", From: "Google <no-reply@accounts.google.com>"}, "security", "security-notice"},
		{"parts: header name in any case", ada, &classifierv1.ClassifyRequest{Subject: "x", Headers: []*mailv1.Header{{Name: "list-id", Value: "<l.example>"}}}, "newsletters", "list-id"},
		{"parts: body only", ada, &classifierv1.ClassifyRequest{Body: "Are we still on for lunch?"}, "other", "fallback"},
		{"admin for another user", admin, &classifierv1.ClassifyRequest{Parent: "users/ada", Raw: []byte(newsletterRaw)}, "newsletters", "list-unsubscribe"},
		{"API key", "mr_adas-api-key", &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw)}, "newsletters", "list-unsubscribe"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Classify(as(t, tt.token), tt.req)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			got := resp.GetClassification()
			if got.GetCategory() != tt.category || got.GetRule() != tt.rule {
				t.Errorf("got (%s, %s), want (%s, %s)", got.GetCategory(), got.GetRule(), tt.category, tt.rule)
			}
			if got.GetSource() != mailv1.ClassificationSource_CLASSIFICATION_SOURCE_RULES || got.GetClassifyTime() == nil || got.GetConfidence() <= 0 {
				t.Errorf("got %v, want source RULES, a classify time and a confidence", got)
			}
		})
	}

	big := []byte(newsletterRaw + strings.Repeat("x", 1<<20))
	bad := []struct {
		name     string
		token    string
		req      *classifierv1.ClassifyRequest
		code     codes.Code
		contains string
	}{
		{"empty request", ada, &classifierv1.ClassifyRequest{}, codes.InvalidArgument, "raw"},
		{"only a parent", ada, &classifierv1.ClassifyRequest{Parent: "users/me"}, codes.InvalidArgument, "raw"},
		{"raw over 1 MiB", ada, &classifierv1.ClassifyRequest{Raw: big}, codes.InvalidArgument, "1 MiB"},
		{"parts over 1 MiB", ada, &classifierv1.ClassifyRequest{Body: string(big)}, codes.InvalidArgument, "1 MiB"},
		{"raw and parts", ada, &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw), Subject: "x"}, codes.InvalidArgument, "not both"},
		{"raw that is no message", ada, &classifierv1.ClassifyRequest{Raw: []byte("no header here, just words")}, codes.InvalidArgument, "RFC 822"},
		{"header without a name", ada, &classifierv1.ClassifyRequest{Subject: "x", Headers: []*mailv1.Header{{Value: "v"}}}, codes.InvalidArgument, "headers[0].name"},
		{"bad parent", ada, &classifierv1.ClassifyRequest{Parent: "people/ada", Raw: []byte(newsletterRaw)}, codes.InvalidArgument, "parent"},
		{"another user's parent", ada, &classifierv1.ClassifyRequest{Parent: "users/bob", Raw: []byte(newsletterRaw)}, codes.PermissionDenied, "users/bob"},
		{"no credential", "", &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw)}, codes.Unauthenticated, "credential"},
		{"expired token", e.auth.ExpiredToken("ada"), &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw)}, codes.Unauthenticated, "expired"},
		{"unknown API key", "mr_nobodys-key", &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw)}, codes.Unauthenticated, ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Classify(as(t, tt.token), tt.req)
			st := status.Convert(err)
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.contains) {
				t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), tt.code, tt.contains)
			}
			if strings.Contains(st.Message(), "gopherweekly") || strings.Contains(st.Message(), "Weekly digest") {
				t.Errorf("the error quotes the mail: %q", st.Message())
			}
		})
	}

	// The service is still up after the bad requests.
	if _, err := c.Classify(as(t, ada), &classifierv1.ClassifyRequest{Raw: []byte(newsletterRaw)}); err != nil {
		t.Errorf("Classify after bad requests: %v", err)
	}
	if strings.Contains(e.logs.String(), "gopherweekly") {
		t.Error("the logs contain mail content")
	}
}

func TestGetLimits(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	c, _ := client(t, e)

	resp, err := c.GetLimits(as(t, e.auth.Token("ada", false)), &classifierv1.GetLimitsRequest{})
	if err != nil {
		t.Fatalf("GetLimits: %v", err)
	}
	if len(resp.GetKeys()) != 0 || resp.GetModel() != "" || resp.GetReplicas() != 1 {
		t.Errorf("got keys %v, model %q, replicas %d; want none, \"\", 1", resp.GetKeys(), resp.GetModel(), resp.GetReplicas())
	}
	wantLanes := []mailv1.Lane{mailv1.Lane_LANE_INTERACTIVE, mailv1.Lane_LANE_LIVE, mailv1.Lane_LANE_BACKFILL}
	if len(resp.GetLanes()) != len(wantLanes) {
		t.Fatalf("lanes = %v, want %v", resp.GetLanes(), wantLanes)
	}
	for i, l := range resp.GetLanes() {
		if l.GetLane() != wantLanes[i] || l.GetWaiting() != 0 {
			t.Errorf("lane %d = %v, want %v with 0 waiting", i, l, wantLanes[i])
		}
	}

	if _, err := c.GetLimits(as(t, ""), &classifierv1.GetLimitsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetLimits without a credential: %v, want Unauthenticated", err)
	}
}

func TestHealth(t *testing.T) {
	e := start(t, testenv.NATS(t), "")
	_, cc := client(t, e)
	ctx := as(t, "")
	for _, svc := range []string{"", classifierv1.ClassifierService_ServiceDesc.ServiceName} {
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v %v, want SERVING", svc, resp.GetStatus(), err)
		}
	}
}
