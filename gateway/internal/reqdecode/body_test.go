package reqdecode_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	"mailroom.dev/gateway/internal/reqdecode"
	ingestv1 "mailroom.dev/gen/go/mailroom/ingest/v1"
)

// everything is a message with a field of every kind that JSON decoding
// treats differently.
const everything = `
name: "reqdecode_test.proto"
package: "reqdecode.test"
syntax: "proto3"
dependency: ["google/protobuf/any.proto", "google/protobuf/duration.proto", "google/protobuf/empty.proto",
  "google/protobuf/field_mask.proto", "google/protobuf/struct.proto", "google/protobuf/timestamp.proto",
  "google/protobuf/wrappers.proto"]
enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "COLOR_RED" number: 1 } value { name: "COLOR_DARK_BLUE" number: 2 } }
message_type {
  name: "Inner"
  field { name: "label" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "label" }
  field { name: "children" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".reqdecode.test.Inner" json_name: "children" }
  field { name: "color" number: 3 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".reqdecode.test.Color" json_name: "color" }
}
message_type {
  name: "Everything"
  field { name: "i32" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "i32" }
  field { name: "i64" number: 2 label: LABEL_OPTIONAL type: TYPE_INT64 json_name: "i64" }
  field { name: "u32" number: 3 label: LABEL_OPTIONAL type: TYPE_UINT32 json_name: "u32" }
  field { name: "f32" number: 4 label: LABEL_OPTIONAL type: TYPE_FLOAT json_name: "f32" }
  field { name: "f64" number: 5 label: LABEL_OPTIONAL type: TYPE_DOUBLE json_name: "f64" }
  field { name: "flag" number: 6 label: LABEL_OPTIONAL type: TYPE_BOOL json_name: "flag" }
  field { name: "text" number: 7 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "text" }
  field { name: "blob" number: 8 label: LABEL_OPTIONAL type: TYPE_BYTES json_name: "blob" }
  field { name: "color" number: 9 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".reqdecode.test.Color" json_name: "color" }
  field { name: "page_size" number: 10 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "pageSize" }
  field { name: "nums" number: 11 label: LABEL_REPEATED type: TYPE_INT32 json_name: "nums" }
  field { name: "colors" number: 12 label: LABEL_REPEATED type: TYPE_ENUM type_name: ".reqdecode.test.Color" json_name: "colors" }
  field { name: "inner" number: 13 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".reqdecode.test.Inner" json_name: "inner" }
  field { name: "inners" number: 14 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".reqdecode.test.Inner" json_name: "inners" }
  field { name: "counts" number: 15 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".reqdecode.test.Everything.CountsEntry" json_name: "counts" }
  field { name: "by_id" number: 16 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".reqdecode.test.Everything.ByIdEntry" json_name: "byId" }
  field { name: "ts" number: 17 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" json_name: "ts" }
  field { name: "dur" number: 18 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Duration" json_name: "dur" }
  field { name: "mask" number: 19 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.FieldMask" json_name: "mask" }
  field { name: "meta" number: 20 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Struct" json_name: "meta" }
  field { name: "val" number: 21 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Value" json_name: "val" }
  field { name: "wrapped" number: 22 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Int32Value" json_name: "wrapped" }
  field { name: "empty" number: 23 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Empty" json_name: "empty" }
  field { name: "any" number: 24 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.Any" json_name: "any" }
  field { name: "choice_text" number: 25 label: LABEL_OPTIONAL type: TYPE_STRING oneof_index: 0 json_name: "choiceText" }
  field { name: "choice_inner" number: 26 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".reqdecode.test.Inner" oneof_index: 0 json_name: "choiceInner" }
  field { name: "flags" number: 27 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".reqdecode.test.Everything.FlagsEntry" json_name: "flags" }
  field { name: "times" number: 28 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".google.protobuf.Timestamp" json_name: "times" }
  field { name: "list" number: 29 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.ListValue" json_name: "list" }
  field { name: "u64" number: 30 label: LABEL_OPTIONAL type: TYPE_UINT64 json_name: "u64" }
  nested_type { name: "CountsEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key" }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "value" } }
  nested_type { name: "ByIdEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "key" }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".reqdecode.test.Inner" json_name: "value" } }
  nested_type { name: "FlagsEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL json_name: "key" }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_BOOL json_name: "value" } }
  oneof_decl { name: "choice" }
}
`

func everythingDesc(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	var fdp descriptorpb.FileDescriptorProto
	if err := prototext.Unmarshal([]byte(everything), &fdp); err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(&fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("Everything")
}

// secret is in every bad value of the tests; no error may repeat it.
const secret = "Dinner"

func TestBodyErrors(t *testing.T) {
	md := everythingDesc(t)
	m := marshaler()
	tests := []struct {
		body string
		want string // the whole message
	}{
		// Scalars of the wrong JSON type, or of the right type and a bad value.
		{`{"i32": "Dinner"}`, "i32: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"pageSize": "x"}`, "pageSize: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"page_size": true}`, "page_size: want an integer (a number or a numeric string), got a boolean"},
		{`{"i32": 1.5}`, "i32: not an integer"},
		{`{"i32": "1.5"}`, "i32: not an integer"},
		{`{"i32": 3000000000}`, "i32: out of range for int32"},
		{`{"i32": " 12"}`, "i32: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"i64": {"Dinner": 1}}`, "i64: want an integer (a number or a numeric string), got an object"},
		{`{"u32": -1}`, "u32: out of range for uint32"},
		{`{"u64": ["Dinner"]}`, "u64: want a non-negative integer (a number or a numeric string), got a list"},
		{`{"f32": 1e39}`, "f32: out of range for float"},
		{`{"f64": 1e400}`, "f64: out of range for double"},
		{`{"f64": "Dinner"}`, "f64: want a number (or a numeric string), got a non-numeric string"},
		{`{"flag": "true"}`, "flag: want a boolean, got a string"},
		{`{"flag": 1}`, "flag: want a boolean, got a number"},
		{`{"text": 5}`, "text: want a string, got a number"},
		{`{"text": false}`, "text: want a string, got a boolean"},
		{`{"blob": 5}`, "blob: want a base64 string, got a number"},
		{`{"blob": "%Dinner%"}`, "blob: not valid base64"},
		// Enums.
		{`{"color": "Dinner"}`, "color: unknown value; want one of COLOR_RED, COLOR_DARK_BLUE (or RED, DARK_BLUE)"},
		{`{"color": true}`, "color: want one of COLOR_RED, COLOR_DARK_BLUE (or RED, DARK_BLUE), got a boolean"},
		{`{"color": 1.5}`, "color: not an integer"},
		{`{"color": 1e10}`, "color: out of range for an enum number"},
		{`{"colors": ["RED", "Dinner"]}`, "colors[1]: unknown value; want one of COLOR_RED, COLOR_DARK_BLUE (or RED, DARK_BLUE)"},
		{`{"colors": ["RED", null]}`, "colors[1]: want one of COLOR_RED, COLOR_DARK_BLUE (or RED, DARK_BLUE), got null"},
		{`{"inner": {"children": [{}, {"color": "Dinner"}]}}`, "inner.children[1].color: unknown value; want one of COLOR_RED, COLOR_DARK_BLUE (or RED, DARK_BLUE)"},
		// Lists.
		{`{"nums": "Dinner"}`, "nums: want a list, got a string"},
		{`{"nums": [1, 2, "Dinner"]}`, "nums[2]: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"nums": [1, null]}`, "nums[1]: want an integer (a number or a numeric string), got null"},
		{`{"nums": {"0": 1}}`, "nums: want a list, got an object"},
		// Nested messages.
		{`{"inner": "Dinner"}`, "inner: want an object, got a string"},
		{`{"inner": ["Dinner"]}`, "inner: want an object, got a list"},
		{`{"inner": {"label": 7}}`, "inner.label: want a string, got a number"},
		{`{"inners": [{"label": "a"}, "Dinner"]}`, "inners[1]: want an object, got a string"},
		{`{"inners": [{"children": [{"children": {"label": "Dinner"}}]}]}`, "inners[0].children[0].children: want a list, got an object"},
		{`{"inners": [null]}`, "inners[0]: want an object, got null"},
		// Maps: entries by position, never by key.
		{`{"counts": []}`, "counts: want an object, got a list"},
		{`{"counts": {"a": 1, "Dinner": "Dinner"}}`, "counts[#1]: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"counts": {"Dinner": null}}`, "counts[#0]: want an integer (a number or a numeric string), got null"},
		{`{"byId": {"1": {}, "Dinner": {}}}`, "byId[#1]: key is not valid for this map"},
		{`{"byId": {"1": {}, "01": {}}}`, "byId[#1]: duplicate key"},
		{`{"byId": {"7": {"label": ["Dinner"]}}}`, "byId[#0].label: want a string, got a list"},
		{`{"flags": {"True": true}}`, "flags[#0]: key is not valid for this map"},
		// Well-known types.
		{`{"ts": 1700000000}`, "ts: want an RFC 3339 string, got a number"},
		{`{"ts": "Dinner at eight"}`, "ts: not a valid RFC 3339 timestamp"},
		{`{"ts": "2024-01-02"}`, "ts: not a valid RFC 3339 timestamp"},
		{`{"times": ["2024-01-02T03:04:05Z", "10000-01-01T00:00:00Z"]}`, "times[1]: not a valid RFC 3339 timestamp"},
		{`{"dur": 5}`, `dur: want a duration string such as "1.5s", got a number`},
		{`{"dur": "5m"}`, `dur: not a valid duration (want seconds with an "s" suffix, such as "1.5s")`},
		{`{"mask": ["a"]}`, "mask: want a string of comma-separated field paths, got a list"},
		{`{"mask": "Dinner_time"}`, "mask: not a valid field mask (want comma-separated lowerCamelCase paths)"},
		{`{"meta": "Dinner"}`, "meta: want an object, got a string"},
		{`{"meta": {"a": {"b": [1, 1e400]}}}`, "meta[#0][#0][1]: out of range for a number"},
		{`{"meta": {"a": 1, "a": 2}}`, "meta[#1]: duplicate key"},
		{`{"list": {}}`, "list: want a list, got an object"},
		{`{"val": 1e999}`, "val: out of range for a number"},
		{`{"wrapped": "Dinner"}`, "wrapped: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"empty": []}`, "empty: want an object, got a list"},
		{`{"any": "Dinner"}`, "any: want an object, got a string"},
		{`{"any": {"@type": "type.googleapis.com/Dinner"}}`, `any: not a valid google.protobuf.Any (want "@type" naming a known message, and that message's fields)`},
		// Field rules.
		{`{"pageSize": 1, "page_size": 2}`, "page_size: duplicate field"},
		{`{"text": "a", "text": "b"}`, "text: duplicate field"},
		{`{"choiceText": "Dinner", "choiceInner": {}}`, "choiceInner: another field of oneof choice is already set"},
		// The body as a whole.
		{`"Dinner"`, "want an object, got a string"},
		{`[{"text": "Dinner"}]`, "want an object, got a list"},
		{`null`, "want an object, got null"},
		{"{\"text\": \"Din\xffner\"}", "invalid UTF-8 at line 1, column 14"},
		{"{\"text\":\n  \"Dinner\" \"x\"}", "malformed JSON at line 2, column 12"},
		{`{"text": "Dinner"`, "malformed JSON at line 1, column 18"},
		{`{"text": Dinner}`, "malformed JSON at line 1, column 10"},
		{`{"i32": 1,}`, "malformed JSON at line 1, column 11"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			for _, via := range []string{"Unmarshal", "NewDecoder"} {
				msg := dynamicpb.NewMessage(md)
				var err error
				if via == "Unmarshal" {
					err = m.Unmarshal([]byte(tt.body), msg)
				} else {
					err = m.NewDecoder(strings.NewReader(tt.body)).Decode(msg)
				}
				var e *reqdecode.Error
				if !errors.As(err, &e) {
					t.Fatalf("%s: error %v (%T), want a *reqdecode.Error", via, err, err)
				}
				if got, want := err.Error(), "invalid request body: "+tt.want; got != want {
					t.Errorf("%s:\n got %s\nwant %s", via, got, want)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "proto:") {
					t.Errorf("%s: message %q repeats the value or protojson's text", via, err)
				}
			}
		})
	}
}

// The checks only explain what the real decoder refuses: every body that
// TestBodyErrors blames (but for unknown enum names, which protojson drops)
// protojson refuses too, and these, that it takes, decode.
func TestBodyAccepted(t *testing.T) {
	md := everythingDesc(t)
	m := marshaler()
	good := []string{
		`{}`,
		`{"i32": "12", "i64": "-9007199254740993", "u32": 4294967295, "u64": "18446744073709551615"}`,
		`{"i32": 1e2, "i64": 12.0, "f32": "NaN", "f64": "-Infinity", "flag": false, "text": "", "blob": "aGk"}`,
		`{"blob": "-_8=", "color": "dark_blue", "colors": ["RED", 2, "COLOR_DARK_BLUE", 7], "nums": []}`,
		`{"pageSize": null, "inner": null, "nums": null, "counts": null, "ts": null, "val": null}`,
		`{"page_size": 5, "inner": {"label": "x", "children": [{"color": "RED"}]}}`,
		`{"counts": {"a": 1, "b": "2"}, "byId": {"-1": {}, "2": {"label": "y"}}, "flags": {"true": false}}`,
		`{"ts": "2024-01-02T03:04:05.123456789+01:00", "times": [], "dur": "-1.5s", "mask": "a.b,cD"}`,
		`{"meta": {"a": null, "b": [1, "x", true, {"c": []}]}, "list": [null, 1], "val": {"k": null}}`,
		`{"wrapped": "5", "empty": {"ignored": 1}, "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"}}`,
		`{"choiceText": "a", "choiceInner": null, "unknown": {"deep": [1, {"x": "y"}]}, "[unknown.ext]": 1}`,
		`{"inners": [{}, {"label": "z"}]}  `,
	}
	for _, body := range good {
		if err := m.Unmarshal([]byte(body), dynamicpb.NewMessage(md)); err != nil {
			t.Errorf("Unmarshal(%s): %v", body, err)
		}
	}

	strict := protojson.UnmarshalOptions{DiscardUnknown: true}
	for _, body := range []string{
		`{"i32": 1.5}`, `{"u32": -1}`, `{"f32": 1e39}`, `{"blob": "%%"}`, `{"color": 1.5}`, `{"nums": [1, null]}`,
		`{"counts": {"Dinner": null}}`, `{"byId": {"1": {}, "01": {}}}`, `{"flags": {"True": true}}`,
		`{"ts": "2024-01-02"}`, `{"times": ["10000-01-01T00:00:00Z"]}`, `{"dur": "5m"}`, `{"mask": "a_b"}`,
		`{"meta": {"a": 1e400}}`, `{"meta": {"a": 1, "a": 2}}`, `{"wrapped": "x"}`, `{"any": {"@type": "x/Dinner"}}`,
		`{"pageSize": 1, "page_size": 2}`, `{"choiceText": "a", "choiceInner": {}}`, `{"colors": [null]}`,
	} {
		if err := strict.Unmarshal([]byte(body), dynamicpb.NewMessage(md)); err == nil {
			t.Errorf("protojson takes %s, which the checks blame", body)
		}
	}
}

// The examples of the REST API: an import of mail.
func TestImportErrors(t *testing.T) {
	m := marshaler()
	tests := []struct{ body, want string }{
		{`{"messages": "mail"}`, "invalid request body: messages: want a list, got a string"},
		{`{"messages":[{"raw": 5}]}`, "invalid request body: messages[0].raw: want a base64 string, got a number"},
		{`{"messages":[{"raw":"%%%"}]}`, "invalid request body: messages[0].raw: not valid base64"},
		{`{"messages":[{"raw":"aGk="},{"raw":"%%% not base64 %%%"}]}`, "invalid request body: messages[1].raw: not valid base64"},
		{`{"lane": "SOON"}`, "invalid request body: lane: unknown value; want one of LANE_INTERACTIVE, LANE_LIVE, LANE_BACKFILL (or INTERACTIVE, LIVE, BACKFILL)"},
		{`{"messages": [`, "invalid request body: malformed JSON at line 1, column 15"},
	}
	for _, tt := range tests {
		var req ingestv1.ImportMessagesRequest
		err := m.NewDecoder(strings.NewReader(tt.body)).Decode(&req)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Decode(%s):\n got %v\nwant %s", tt.body, err, tt.want)
		}
	}
}

// A body bound to one field (`body: "mailbox"`) is checked against that
// field's type, with paths from the body's root.
func TestFieldBodyErrors(t *testing.T) {
	m := marshaler()
	tests := []struct {
		body   string
		target func(*ingestv1.CreateMailboxRequest) any
		want   string
	}{
		{`{"provider": "PIGEON"}`, func(r *ingestv1.CreateMailboxRequest) any { return &r.Mailbox },
			"provider: unknown value; want one of PROVIDER_IMPORT, PROVIDER_GMAIL, PROVIDER_IMAP (or IMPORT, GMAIL, IMAP)"},
		{`{"imap": {"port": "imaps"}}`, func(r *ingestv1.CreateMailboxRequest) any { return &r.Mailbox },
			"imap.port: want an integer (a number or a numeric string), got a non-numeric string"},
		{`{"imap": {"security": "SSL"}}`, func(r *ingestv1.CreateMailboxRequest) any { return &r.Mailbox },
			"imap.security: unknown value; want one of IMAP_SECURITY_TLS, IMAP_SECURITY_STARTTLS, IMAP_SECURITY_NONE (or TLS, STARTTLS, NONE)"},
		{`"Dinner"`, func(r *ingestv1.CreateMailboxRequest) any { return &r.Mailbox }, "want an object, got a string"},
		{`{"display_name": 1}`, func(r *ingestv1.CreateMailboxRequest) any { return &r.Mailbox }, "display_name: want a string, got a number"},
		{`5`, func(r *ingestv1.CreateMailboxRequest) any { return &r.Parent }, "want a string, got a number"},
	}
	for _, tt := range tests {
		var req ingestv1.CreateMailboxRequest
		err := m.NewDecoder(strings.NewReader(tt.body)).Decode(tt.target(&req))
		if want := "invalid request body: " + tt.want; err == nil || err.Error() != want {
			t.Errorf("Decode(%s):\n got %v\nwant %s", tt.body, err, want)
		}
	}

	// Bare enums, lists and maps, which grpc-gateway decodes element by element.
	var mode ingestv1.SyncMode
	err := m.Unmarshal([]byte(`"Dinner"`), &mode)
	if want := "invalid request body: unknown value; want one of SYNC_MODE_INCREMENTAL, SYNC_MODE_FULL (or INCREMENTAL, FULL)"; err == nil || err.Error() != want {
		t.Errorf("bare enum: got %v, want %s", err, want)
	}
	var list []*ingestv1.RawMessage
	err = m.Unmarshal([]byte(`[{"raw": "aGk="}, {"raw": true}]`), &list)
	if want := "invalid request body: [1].raw: want a base64 string, got a boolean"; err == nil || err.Error() != want {
		t.Errorf("list: got %v, want %s", err, want)
	}
	var ints map[string]int32
	err = m.Unmarshal([]byte(`{"a": 1, "b": 1.5}`), &ints)
	if want := "invalid request body: [#1]: not an integer"; err == nil || err.Error() != want {
		t.Errorf("map: got %v, want %s", err, want)
	}
}

// An empty body is io.EOF, which grpc-gateway takes for "no body"; a body
// that cannot be read says so, without the reader's words.
func TestDecodeEOFAndReadErrors(t *testing.T) {
	m := marshaler()
	var req ingestv1.ImportMessagesRequest
	for _, body := range []string{"", "  \n"} {
		if err := m.NewDecoder(strings.NewReader(body)).Decode(&req); err != io.EOF {
			t.Errorf("Decode(%q) = %v, want io.EOF", body, err)
		}
		if err := m.Unmarshal([]byte(body), &req); err != io.EOF {
			t.Errorf("Unmarshal(%q) = %v, want io.EOF", body, err)
		}
	}
	broken := errors.New("connection reset with Dinner")
	err := m.NewDecoder(io.MultiReader(strings.NewReader(`{"messages": [`), errReader{broken})).Decode(&req)
	if err == nil || err.Error() != "invalid request body: cannot be read" || !errors.Is(err, broken) {
		t.Errorf("Decode of a broken body = %v", err)
	}
	// Two values in a stream: each Decode reads one.
	d := m.NewDecoder(strings.NewReader(`{"lane": "LIVE"} {"lane": 7.5}`))
	if err := d.Decode(&req); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(&req); err == nil || err.Error() != "invalid request body: lane: not an integer" {
		t.Errorf("second value: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// The generic message, for what the checks cannot explain, keeps no value.
func TestSanitizedFallback(t *testing.T) {
	// A required field (proto2) is checked by protojson after decoding.
	var fdp descriptorpb.FileDescriptorProto
	err := prototext.Unmarshal([]byte(`name: "req.proto" package: "reqdecode.req" syntax: "proto2"
message_type { name: "Req" field { name: "id" number: 1 label: LABEL_REQUIRED type: TYPE_STRING json_name: "id" } }`), &fdp)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := protodesc.NewFile(&fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	msg := dynamicpb.NewMessage(fd.Messages().ByName("Req"))
	err = marshaler().Unmarshal([]byte(`{}`), msg)
	if got, want := fmt.Sprint(err), "invalid request body: required field reqdecode.req.Req.id not set"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
