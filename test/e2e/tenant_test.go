package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "mailroom.dev/gen/go/mailroom/auth/v1"
	_ "mailroom.dev/gen/go/mailroom/classifier/v1"
	_ "mailroom.dev/gen/go/mailroom/ingest/v1"
	_ "mailroom.dev/gen/go/mailroom/store/v1"
	"mailroom.dev/platform/authn"
	"mailroom.dev/platform/grpcconn"
)

// isolationServices are the services whose every RPC the tenant test calls.
var isolationServices = map[string]string{
	"mailroom.auth.v1.AuthService":             "auth",
	"mailroom.ingest.v1.IngestService":         "ingest",
	"mailroom.classifier.v1.ClassifierService": "classifier",
	"mailroom.store.v1.StoreService":           "store",
}

// isolationExempt are the RPCs that hold no user's data, with the reason.
var isolationExempt = map[string]string{
	"mailroom.auth.v1.AuthService.ExchangeApiKey":            "public: the API key it is given is the credential",
	"mailroom.auth.v1.AuthService.GetJwks":                   "public: the keys that verify tokens",
	"mailroom.ingest.v1.IngestService.CompleteAuthorization": "public: the single-use OAuth state is the credential",
	"mailroom.ingest.v1.IngestService.StartAuthorization":    "public: the single-use OAuth state is the credential",
	"mailroom.classifier.v1.ClassifierService.GetLimits":     "no user's data: the limiter's state",
}

// isolationRequests hold, for every other RPC, a request (protojson) that
// targets bob's resources; placeholders in capitals are bob's ids. A new
// RPC is not in this table, and the test fails until one is written: the
// RPC's authorization check is then tested by construction.
var isolationRequests = map[string]string{
	"mailroom.auth.v1.AuthService.CreateUser":       `{"userId":"eve","user":{"displayName":"Eve"}}`,
	"mailroom.auth.v1.AuthService.GetUser":          `{"name":"users/bob"}`,
	"mailroom.auth.v1.AuthService.ListUsers":        `{}`,
	"mailroom.auth.v1.AuthService.CreateApiKey":     `{"parent":"users/bob","apiKey":{"displayName":"stolen"}}`,
	"mailroom.auth.v1.AuthService.ListApiKeys":      `{"parent":"users/bob"}`,
	"mailroom.auth.v1.AuthService.DeleteApiKey":     `{"name":"APIKEY"}`,
	"mailroom.auth.v1.AuthService.DeleteUser":       `{"name":"users/bob"}`,
	"mailroom.auth.v1.AuthService.PutCredential":    `{"credential":{"name":"users/bob/mailboxes/inbox/credential","kind":"CREDENTIAL_KIND_IMAP_PASSWORD","secret":"aHVudGVyMg=="}}`,
	"mailroom.auth.v1.AuthService.GetCredential":    `{"name":"users/bob/mailboxes/inbox/credential"}`,
	"mailroom.auth.v1.AuthService.DeleteCredential": `{"name":"users/bob/mailboxes/inbox/credential"}`,
	"mailroom.auth.v1.AuthService.RotateVaultKey":   `{}`,

	"mailroom.ingest.v1.IngestService.CreateMailbox":    `{"parent":"users/bob","mailboxId":"planted","mailbox":{"provider":"PROVIDER_IMPORT"}}`,
	"mailroom.ingest.v1.IngestService.GetMailbox":       `{"name":"users/bob/mailboxes/inbox"}`,
	"mailroom.ingest.v1.IngestService.ListMailboxes":    `{"parent":"users/bob"}`,
	"mailroom.ingest.v1.IngestService.ImportMessages":   `{"parent":"users/bob/mailboxes/inbox","messages":[{"raw":"RAW"}]}`,
	"mailroom.ingest.v1.IngestService.SyncMailbox":      `{"name":"users/bob/mailboxes/inbox"}`,
	"mailroom.ingest.v1.IngestService.GetSyncJob":       `{"name":"SYNCJOB"}`,
	"mailroom.ingest.v1.IngestService.ListSyncJobs":     `{"parent":"users/bob"}`,
	"mailroom.ingest.v1.IngestService.WatchSyncJob":     `{"name":"SYNCJOB"}`,
	"mailroom.ingest.v1.IngestService.DeleteMailbox":    `{"name":"users/bob/mailboxes/inbox"}`,
	"mailroom.ingest.v1.IngestService.ReconnectMailbox": `{"name":"users/bob/mailboxes/inbox"}`,
	"mailroom.ingest.v1.IngestService.PurgeUserData":    `{"user":"bob"}`,
	"mailroom.ingest.v1.IngestService.NotifyGmailPush":  `{"emailAddress":"bob@gmail.example","historyId":"1"}`,

	"mailroom.classifier.v1.ClassifierService.Classify":         `{"parent":"users/bob","subject":"hello","body":"hi"}`,
	"mailroom.classifier.v1.ClassifierService.GetTaxonomy":      `{"name":"users/bob/taxonomy"}`,
	"mailroom.classifier.v1.ClassifierService.UpdateTaxonomy":   `{"taxonomy":{"name":"users/bob/taxonomy","categories":[{"name":"other","description":"All of it."}]}}`,
	"mailroom.classifier.v1.ClassifierService.GetQuota":         `{"name":"users/bob/quota"}`,
	"mailroom.classifier.v1.ClassifierService.UpdateQuota":      `{"quota":{"name":"users/bob/quota","mailsPerDay":"1"}}`,
	"mailroom.classifier.v1.ClassifierService.ListDeadLetters":  `{"parent":"users/bob"}`,
	"mailroom.classifier.v1.ClassifierService.ReplayDeadLetter": `{"name":"users/bob/deadLetters/1"}`,
	"mailroom.classifier.v1.ClassifierService.PurgeUserData":    `{"user":"bob"}`,

	"mailroom.store.v1.StoreService.ListMessages":               `{"parent":"users/bob"}`,
	"mailroom.store.v1.StoreService.GetMessage":                 `{"name":"MESSAGE"}`,
	"mailroom.store.v1.StoreService.GetStats":                   `{"name":"users/bob/stats"}`,
	"mailroom.store.v1.StoreService.UpdateMessage":              `{"message":{"name":"MESSAGE","classification":{"category":"work"}},"updateMask":"classification.category"}`,
	"mailroom.classifier.v1.ClassifierService.CreateCorrection": `{"parent":"users/bob","correction":{"message":"MESSAGE","category":"work"}}`,
	"mailroom.store.v1.StoreService.GetUsage":                   `{"name":"users/bob/usage"}`,
	"mailroom.store.v1.StoreService.PurgeUserData":              `{"user":"bob"}`,
	"mailroom.store.v1.StoreService.WatchMessages":              `{"parent":"users/bob"}`,
	"mailroom.store.v1.StoreService.CreateWebhook":              `{"parent":"users/bob","webhook":{"url":"https://example.com/hook"}}`,
	"mailroom.store.v1.StoreService.GetWebhook":                 `{"name":"WEBHOOK"}`,
	"mailroom.store.v1.StoreService.ListWebhooks":               `{"parent":"users/bob"}`,
	"mailroom.store.v1.StoreService.DeleteWebhook":              `{"name":"WEBHOOK"}`,
	"mailroom.store.v1.StoreService.UpdateWebhook":              `{"webhook":{"name":"WEBHOOK","state":2},"updateMask":"state"}`,
	"mailroom.store.v1.StoreService.RotateWebhookSecret":        `{"name":"WEBHOOK"}`,
}

// TestTenantIsolation calls every RPC of every service as ada against bob's
// resources, straight at each service's gRPC port and through the gateway,
// and expects each to be refused (PermissionDenied, or NotFound where
// existence itself is private). Then it checks that bob's data is intact.
func TestTenantIsolation(t *testing.T) {
	e := start(t, options{extra: map[string]string{"MAILROOM_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}})
	ada := e.user("ada")
	bob := e.user("bob")
	mb := e.mailbox("bob", bob, "inbox")
	e.must(200, "POST", "/v1/"+mb+"/messages:import", bob, map[string]any{"messages": []map[string]any{{"raw": raw(t, "personal.eml")}}})
	msgs := e.classified(bob, "bob", 1)
	job := e.must(200, "POST", "/v1/"+mb+":sync", bob, map[string]any{})
	keys := e.must(200, "GET", "/v1/users/bob/apiKeys", bob, nil)
	bobKey := keys["apiKeys"].([]any)[0].(map[string]any)["name"].(string)
	hook := e.must(200, "POST", "/v1/users/bob/webhooks", bob, map[string]any{"url": "http://127.0.0.1:9/hook"})
	ids := map[string]string{
		"WEBHOOK": hook["name"].(string),
		"MESSAGE": msgs[0]["name"].(string),
		"SYNCJOB": job["name"].(string),
		"APIKEY":  bobKey,
		"RAW":     raw(t, "newsletter.eml"),
	}
	rules := httpRules(t)

	for svcName, short := range isolationServices {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svcName))
		if err != nil {
			t.Fatalf("%s: %v", svcName, err)
		}
		sd := d.(protoreflect.ServiceDescriptor)
		cc, err := grpcconn.Dial(e.suite.GRPC[short])
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			full := string(md.FullName())
			if reason, ok := isolationExempt[full]; ok {
				t.Logf("%s exempt: %s", full, reason)
				continue
			}
			tmpl, ok := isolationRequests[full]
			if !ok {
				t.Errorf("%s is not in the tenant-isolation table: add a request that targets bob's resources", full)
				continue
			}
			for k, v := range ids {
				tmpl = strings.ReplaceAll(tmpl, k, v)
			}
			t.Run(short+"/"+string(md.Name()), func(t *testing.T) {
				req := dynamicpb.NewMessage(md.Input())
				if err := protojson.Unmarshal([]byte(tmpl), req); err != nil {
					t.Fatalf("request %s: %v", tmpl, err)
				}
				code, msg := callGRPC(t, cc, md, req, ada)
				if code != codes.PermissionDenied && code != codes.NotFound {
					t.Errorf("gRPC as ada: %v %q, want PermissionDenied or NotFound", code, msg)
				}
				if rule, ok := rules[full]; ok {
					st, body := callREST(t, e, rule, tmpl, ada)
					if st != http.StatusForbidden && st != http.StatusNotFound {
						t.Errorf("REST %s %s as ada: %d %s, want 403 or 404", rule.method, rule.path, st, body)
					}
				}
			})
		}
	}

	// Nothing of bob's was changed or taken.
	if got := e.must(200, "GET", "/v1/"+mb, bob, nil); got["name"] != mb {
		t.Errorf("bob's mailbox: %v", got)
	}
	if got := e.must(200, "GET", "/v1/users/bob/messages", bob, nil); len(got["messages"].([]any)) != 1 {
		t.Errorf("bob's messages: %v", got)
	}
	if got := e.must(200, "GET", "/v1/users/bob/apiKeys", bob, nil); len(got["apiKeys"].([]any)) != 1 {
		t.Errorf("bob's keys: %v", got)
	}
	if got := e.must(200, "GET", "/v1/users/bob/webhooks", bob, nil); len(got["webhooks"].([]any)) != 1 ||
		got["webhooks"].([]any)[0].(map[string]any)["state"] != "WEBHOOK_STATE_ACTIVE" {
		t.Errorf("bob's webhooks (ada may neither plant, delete nor pause one): %v", got)
	}
	if got := e.must(200, "GET", "/v1/users/bob/mailboxes", bob, nil); len(got["mailboxes"].([]any)) != 1 {
		t.Errorf("bob's mailboxes (ada may not plant one): %v", got)
	}
}

// callGRPC calls md with req as the holder of apiKey and returns the status.
func callGRPC(t *testing.T, cc *grpc.ClientConn, md protoreflect.MethodDescriptor, req *dynamicpb.Message, apiKey string) (codes.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = authn.OutgoingToken(ctx, apiKey)
	method := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	resp := dynamicpb.NewMessage(md.Output())
	var err error
	if md.IsStreamingServer() {
		var s grpc.ClientStream
		s, err = cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
		if err == nil {
			if err = s.SendMsg(req); err == nil {
				_ = s.CloseSend()
				err = s.RecvMsg(resp)
			}
		}
	} else {
		err = cc.Invoke(ctx, method, req, resp)
	}
	st := status.Convert(err)
	return st.Code(), st.Message()
}

type httpRule struct {
	method, path, body string
}

// httpRules reads proto/http_rules.yaml: selector → verb, path, body.
func httpRules(t *testing.T) map[string]httpRule {
	t.Helper()
	f, err := os.Open("../../proto/http_rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules := map[string]httpRule{}
	var sel string
	line := regexp.MustCompile(`^\s*-?\s*(selector|get|post|patch|delete|body):\s*"?([^"]*)"?\s*$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		switch m[1] {
		case "selector":
			sel = m[2]
		case "body":
			r := rules[sel]
			r.body = m[2]
			rules[sel] = r
		default:
			rules[sel] = httpRule{method: strings.ToUpper(m[1]), path: m[2]}
		}
	}
	return rules
}

var pathVar = regexp.MustCompile(`\{([a-z_.]+)=[^}]*\}`)

// callREST sends the request of tmpl (protojson) along rule as the holder
// of apiKey: path variables from the request's fields, the body per rule.
func callREST(t *testing.T, e *env, rule httpRule, tmpl, apiKey string) (int, string) {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal([]byte(tmpl), &fields); err != nil {
		t.Fatal(err)
	}
	path := pathVar.ReplaceAllStringFunc(rule.path, func(v string) string {
		field := pathVar.FindStringSubmatch(v)[1]
		var cur any = fields
		for _, part := range strings.Split(field, ".") {
			cur = cur.(map[string]any)[lowerCamel(part)]
		}
		return fmt.Sprint(cur)
	})
	var body io.Reader
	switch rule.body {
	case "*":
		b, _ := json.Marshal(fields)
		body = bytes.NewReader(b)
	case "":
	default:
		b, _ := json.Marshal(fields[lowerCamel(rule.body)])
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(rule.method, e.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

func lowerCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}
