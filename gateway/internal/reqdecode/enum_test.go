package reqdecode_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"mailroom.dev/gateway/internal/reqdecode"
	classifierv1 "mailroom.dev/gen/go/mailroom/classifier/v1"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
)

func marshaler() reqdecode.Marshaler {
	return reqdecode.Marshaler{JSONPb: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// decode decodes body the way a generated handler with `body: "mailbox"` does.
func decodeMailbox(t *testing.T, body string) *ingestv1.Mailbox {
	t.Helper()
	var req ingestv1.CreateMailboxRequest
	if err := marshaler().NewDecoder(strings.NewReader(body)).Decode(&req.Mailbox); err != nil {
		t.Fatalf("Decode(%s): %v", body, err)
	}
	return req.GetMailbox()
}

func TestDecodeAcceptsShortAndFullEnumNames(t *testing.T) {
	tests := []struct {
		body         string
		wantProvider ingestv1.Provider
		wantSecurity ingestv1.ImapSecurity
	}{
		{`{"provider":"GMAIL"}`, ingestv1.Provider_PROVIDER_GMAIL, 0},
		{`{"provider":"PROVIDER_GMAIL"}`, ingestv1.Provider_PROVIDER_GMAIL, 0},
		{`{"provider":"gmail"}`, ingestv1.Provider_PROVIDER_GMAIL, 0},
		{`{"provider":"provider_import"}`, ingestv1.Provider_PROVIDER_IMPORT, 0},
		{`{"provider":3}`, ingestv1.Provider_PROVIDER_IMAP, 0},
		{`{"provider":"IMAP","imap":{"host":"h","security":"TLS"}}`, ingestv1.Provider_PROVIDER_IMAP, ingestv1.ImapSecurity_IMAP_SECURITY_TLS},
		{`{"provider":"IMAP","imap":{"security":"STARTTLS"}}`, ingestv1.Provider_PROVIDER_IMAP, ingestv1.ImapSecurity_IMAP_SECURITY_STARTTLS},
		// proto field names work as well as JSON names.
		{`{"provider":"IMAP","imap":{"security":"NONE"},"display_name":"x"}`, ingestv1.Provider_PROVIDER_IMAP, ingestv1.ImapSecurity_IMAP_SECURITY_NONE},
	}
	for _, tt := range tests {
		mb := decodeMailbox(t, tt.body)
		if got := mb.GetProvider(); got != tt.wantProvider {
			t.Errorf("%s: provider = %v, want %v", tt.body, got, tt.wantProvider)
		}
		if got := mb.GetImap().GetSecurity(); got != tt.wantSecurity {
			t.Errorf("%s: imap.security = %v, want %v", tt.body, got, tt.wantSecurity)
		}
	}
}

func TestDecodeLeavesOtherValuesAlone(t *testing.T) {
	body := `{"provider":"GMAIL","address":"GMAIL","displayName":"<b>&amp; \u00e9</b>","imap":{"port":993}}`
	mb := decodeMailbox(t, body)
	want := &ingestv1.Mailbox{
		Provider:    ingestv1.Provider_PROVIDER_GMAIL,
		Address:     "GMAIL",
		DisplayName: "<b>&amp; é</b>",
		Imap:        &ingestv1.ImapSettings{Port: 993},
	}
	if !proto.Equal(mb, want) {
		t.Errorf("got %v, want %v", mb, want)
	}
}

func TestDecodeNestedAndRepeated(t *testing.T) {
	m := marshaler()

	var imp ingestv1.ImportMessagesRequest
	if err := m.Unmarshal([]byte(`{"lane":"live","messages":[{"raw":"aGk="}]}`), &imp); err != nil {
		t.Fatal(err)
	}
	if got, want := imp.GetLane(), mailv1.Lane_LANE_LIVE; got != want {
		t.Errorf("lane = %v, want %v", got, want)
	}
	if got, want := string(imp.GetMessages()[0].GetRaw()), "hi"; got != want {
		t.Errorf("raw = %q, want %q", got, want)
	}

	var limits classifierv1.GetLimitsResponse
	if err := m.Unmarshal([]byte(`{"lanes":[{"lane":"BACKFILL"},{"lane":"LANE_INTERACTIVE"}]}`), &limits); err != nil {
		t.Fatal(err)
	}
	var lanes []mailv1.Lane
	for _, l := range limits.GetLanes() {
		lanes = append(lanes, l.GetLane())
	}
	if len(lanes) != 2 || lanes[0] != mailv1.Lane_LANE_BACKFILL || lanes[1] != mailv1.Lane_LANE_INTERACTIVE {
		t.Errorf("lanes = %v, want [LANE_BACKFILL LANE_INTERACTIVE]", lanes)
	}
}

// FieldOptions' enums do not follow buf's prefix rule (OptionTargetType's
// values start with TARGET_TYPE_): the prefix the values share still works,
// in a repeated enum field too.
func TestDecodeCommonPrefixOfOtherEnums(t *testing.T) {
	var opts descriptorpb.FieldOptions
	if err := marshaler().Unmarshal([]byte(`{"targets":["FILE","TARGET_TYPE_MESSAGE"],"retention":"SOURCE","ctype":"CORD"}`), &opts); err != nil {
		t.Fatal(err)
	}
	targets := opts.GetTargets()
	if len(targets) != 2 || targets[0] != descriptorpb.FieldOptions_TARGET_TYPE_FILE || targets[1] != descriptorpb.FieldOptions_TARGET_TYPE_MESSAGE {
		t.Errorf("targets = %v", targets)
	}
	if got, want := opts.GetRetention(), descriptorpb.FieldOptions_RETENTION_SOURCE; got != want {
		t.Errorf("retention = %v, want %v", got, want)
	}
	if got, want := opts.GetCtype(), descriptorpb.FieldOptions_CORD; got != want {
		t.Errorf("ctype = %v, want %v", got, want)
	}
}

// A body bound to an enum field alone (`body: "mode"`) decodes from a name.
func TestDecodeBareEnum(t *testing.T) {
	var req ingestv1.SyncMailboxRequest
	if err := marshaler().NewDecoder(strings.NewReader(`"FULL"`)).Decode(&req.Mode); err != nil {
		t.Fatal(err)
	}
	if got, want := req.GetMode(), ingestv1.SyncMode_SYNC_MODE_FULL; got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}
}

// Invalid JSON with a short enum name reaches protojson, which refuses it.
func TestInvalidJSONIsRefused(t *testing.T) {
	in := []byte(`{"provider":"GMAIL",`)
	var mb ingestv1.Mailbox
	if err := marshaler().Unmarshal(in, &mb); err == nil {
		t.Error("Unmarshal of invalid JSON: no error")
	}
}

func TestQueryParser(t *testing.T) {
	p := &reqdecode.QueryParser{}

	var sync ingestv1.SyncMailboxRequest
	if err := p.Parse(&sync, url.Values{"mode": {"full"}, "maxMessages": {"20"}}, &utilities.DoubleArray{}); err != nil {
		t.Fatal(err)
	}
	if got, want := sync.GetMode(), ingestv1.SyncMode_SYNC_MODE_FULL; got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}
	if got, want := sync.GetMaxMessages(), int32(20); got != want {
		t.Errorf("maxMessages = %v, want %v", got, want)
	}

	var create ingestv1.CreateMailboxRequest
	values := url.Values{"mailbox.provider": {"GMAIL"}, "mailbox.imap.security": {"IMAP_SECURITY_NONE"}}
	if err := p.Parse(&create, values, &utilities.DoubleArray{}); err != nil {
		t.Fatal(err)
	}
	if got, want := create.GetMailbox().GetProvider(), ingestv1.Provider_PROVIDER_GMAIL; got != want {
		t.Errorf("mailbox.provider = %v, want %v", got, want)
	}
	if got, want := create.GetMailbox().GetImap().GetSecurity(), ingestv1.ImapSecurity_IMAP_SECURITY_NONE; got != want {
		t.Errorf("mailbox.imap.security = %v, want %v", got, want)
	}
	if got := values.Get("mailbox.provider"); got != "GMAIL" {
		t.Errorf("the caller's values were modified: %q", got)
	}
}
