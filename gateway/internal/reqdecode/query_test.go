package reqdecode_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"mailroom.dev/gateway/internal/reqdecode"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
)

func TestQueryErrors(t *testing.T) {
	everything := dynamicpb.NewMessage(everythingDesc(t))
	tests := []struct {
		msg    proto.Message
		query  string
		filter [][]string // fields bound elsewhere (path, body)
		want   string     // "" for success
	}{
		{&ingestv1.ListMailboxesRequest{}, "pageSize=5&page_token=t&unknown=Dinner", nil, ""},
		{&ingestv1.ListMailboxesRequest{}, "pageSize=Dinner", nil, "pageSize: want an integer"},
		{&ingestv1.ListMailboxesRequest{}, "page_size=99999999999", nil, "page_size: out of range for int32"},
		{&ingestv1.ListMailboxesRequest{}, "pageSize=1&page_size=2", nil, "page_size: sets the same field as pageSize"},
		{&ingestv1.ListMailboxesRequest{}, "parent=users/ada&page_size=Dinner", [][]string{{"parent"}}, "page_size: want an integer"},
		{&ingestv1.ListMailboxesRequest{}, "page_size=Dinner", [][]string{{"page_size"}}, ""},
		{&ingestv1.SyncMailboxRequest{}, "mode=full&maxMessages=3", nil, ""},
		{&ingestv1.SyncMailboxRequest{}, "mode=Dinner", nil, "mode: unknown value; want one of SYNC_MODE_INCREMENTAL, SYNC_MODE_FULL (or INCREMENTAL, FULL)"},
		{&ingestv1.SyncMailboxRequest{}, "mode=9", nil, "mode: unknown value; want one of SYNC_MODE_INCREMENTAL, SYNC_MODE_FULL (or INCREMENTAL, FULL)"},
		{&ingestv1.SyncMailboxRequest{}, "maxMessages=1&maxMessages=Dinner", nil, "maxMessages: given more than once"},
		{&ingestv1.CreateMailboxRequest{}, "mailbox.provider=Dinner", nil, "mailbox.provider: unknown value; want one of PROVIDER_IMPORT, PROVIDER_GMAIL, PROVIDER_IMAP (or IMPORT, GMAIL, IMAP)"},
		{&ingestv1.CreateMailboxRequest{}, "mailbox.imap.port=Dinner", nil, "mailbox.imap.port: want an integer"},
		{everything, "u32=-1", nil, "u32: out of range for uint32"},
		{everything, "u64=Dinner", nil, "u64: want a non-negative integer"},
		{everything, "f64=Dinner", nil, "f64: want a number"},
		{everything, "f32=1e39", nil, "f32: out of range for float"},
		{everything, "flag=Dinner", nil, "flag: want true or false"},
		{everything, "blob=%25Dinner", nil, "blob: not valid base64"},
		{everything, "nums=1&nums=Dinner", nil, "nums: want an integer"},
		{everything, "colors=RED&colors=Dinner", nil, "colors: unknown value; want one of COLOR_RED, COLOR_DARK_BLUE (or RED, DARK_BLUE)"},
		{everything, "ts=Dinner", nil, "ts: want an RFC 3339 timestamp"},
		{everything, "ts=2024-01-02T03:04:05Z&dur=1h30m&wrapped=4", nil, ""},
		{everything, "dur=Dinner", nil, `dur: want a duration such as "1.5s" or "1h30m"`},
		{everything, "wrapped=Dinner", nil, "wrapped: want an integer"},
		{everything, "inner=Dinner", nil, "inner: cannot be set from a query parameter"},
		{everything, "inners.label=Dinner", nil, "inners.label: inners is not a message field"},
		{everything, "text.x=Dinner", nil, "text.x: text is not a message field"},
		{everything, "counts[Dinner]=Dinner", nil, "counts[...]: want an integer"},
		{everything, "text[Dinner]=x", nil, "text[...]: not a map field"},
		{everything, "choiceText=Dinner&choiceInner.label=Dinner", nil, "choiceText: another field of oneof choice is already set"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			values, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			filter := &utilities.DoubleArray{}
			if tt.filter != nil {
				filter = utilities.NewDoubleArray(tt.filter)
			}
			msg := tt.msg.ProtoReflect().New().Interface()
			err = (&reqdecode.QueryParser{}).Parse(msg, values, filter)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var e *reqdecode.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T), want a *reqdecode.Error", err, err)
			}
			if got, want := err.Error(), "invalid query parameter "+tt.want; got != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("message %q repeats a value", err)
			}
		})
	}
}
