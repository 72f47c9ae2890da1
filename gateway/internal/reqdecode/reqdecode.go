// Package reqdecode decodes the gateway's REST requests, request bodies
// (Marshaler, a wrapper around grpc-gateway's runtime.JSONPb) and query
// parameters (QueryParser), with two changes to grpc-gateway's defaults.
//
// Enum values may be named by their short form as well as by their full
// name: "GMAIL" for PROVIDER_GMAIL, "TLS" for IMAP_SECURITY_TLS. The short
// form is the full name without the prefix that every value of the enum
// shares (buf lint's ENUM_VALUE_PREFIX rule); names are matched without
// regard to case. A name that no value has is refused (protojson, told to
// discard unknown fields, would silently drop it). Responses keep the full
// names.
//
// Decoding errors are precise and safe to show: they name the path of the
// offending field and what it wants, never repeat the client's value
// (which in a mail import is mail), and are stable text:
//
//	invalid request body: messages: want a list, got a string
//	invalid request body: messages[0].raw: not valid base64
//	invalid request body: lane: unknown value; want one of LANE_INTERACTIVE, ... (or INTERACTIVE, ...)
//	invalid request body: malformed JSON at line 1, column 15
//	invalid query parameter pageSize: want an integer
//
// A path names fields as the client wrote them, list elements by index
// (messages[0]) and map entries by their position in the JSON object,
// from 0 (labels[#0]), since a key is the client's data.
//
// Everything works from the protobuf descriptors, for every message of
// every RPC. The checks that find a problem's path run only after the
// real decoder (protojson, or grpc-gateway's query parser) has refused
// the request, so they cost nothing on the way of a valid one.
package reqdecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// Error is a request that could not be decoded. Its message is safe to
// send to the client: it holds field paths and expectations, never values.
// grpc-gateway answers it, as any decoding error, with InvalidArgument.
type Error struct {
	// Field is the path of the offending value, like "messages[0].raw" or
	// the name of a query parameter; empty for the request as a whole.
	Field string
	// Description says what is wrong: "want a list, got a string".
	Description string

	query bool  // a query parameter, not the body
	err   error // what the underlying decoder said; never shown
}

// Error returns the message for the client.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case !e.query:
		b.WriteString("invalid request body: ")
		if e.Field != "" {
			b.WriteString(e.Field + ": ")
		}
	case e.Field != "":
		b.WriteString("invalid query parameter " + e.Field + ": ")
	default:
		b.WriteString("invalid query parameters: ")
	}
	b.WriteString(e.Description)
	return b.String()
}

// Unwrap returns the underlying decoder's error, for logs and errors.Is;
// its text may hold the client's values.
func (e *Error) Unwrap() error { return e.err }

// Marshaler is runtime.JSONPb whose decoding accepts short enum names and
// returns an *Error when it fails. Encoding is JSONPb's own.
type Marshaler struct {
	*runtime.JSONPb
}

// Unmarshal unmarshals the first JSON value of data into v, which is what
// grpc-gateway decodes a request body into: a message, a pointer to a
// message field, or a pointer to a repeated, map, enum or scalar field.
// Empty data is io.EOF.
func (m Marshaler) Unmarshal(data []byte, v any) error {
	return m.decode(json.NewDecoder(bytes.NewReader(data)), func() []byte { return data }, v)
}

// NewDecoder returns a Decoder reading JSON values from r.
func (m Marshaler) NewDecoder(r io.Reader) runtime.Decoder {
	rec := &recorder{r: r}
	return &decoder{m: m, rec: rec, d: json.NewDecoder(rec)}
}

type decoder struct {
	m   Marshaler
	rec *recorder
	d   *json.Decoder
}

// Decode reads the next JSON value (the generated handlers read one) and
// unmarshals it into v; at the end of the input it returns io.EOF.
func (d *decoder) Decode(v any) error {
	return d.m.decode(d.d, d.rec.read, v)
}

// recorder keeps what the JSON decoder read, to cut the raw value out of
// it and to place a syntax error by line and column.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

func (r *recorder) read() []byte { return r.buf }

// skipValue makes json.Decoder check the syntax of a value without keeping
// a copy of it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }

// decode reads the next value from d, whose input so far is input(), and
// unmarshals it into v.
func (m Marshaler) decode(d *json.Decoder, input func() []byte, v any) error {
	start := d.InputOffset()
	if err := d.Decode(&skipValue{}); err != nil {
		var syntax *json.SyntaxError
		switch {
		case err == io.EOF:
			return err
		case errors.As(err, &syntax):
			return malformed(input(), int(syntax.Offset)-1, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return malformed(input(), len(input()), err)
		}
		// The body could not be read (over the size cap, the client gone).
		return &Error{Description: "cannot be read", err: err}
	}
	raw := bytes.TrimSpace(input()[start:d.InputOffset()])
	return m.unmarshal(raw, v)
}

// unmarshal decodes raw, one syntactically valid JSON value, into v.
func (m Marshaler) unmarshal(raw []byte, v any) error {
	data, unknown := normalize(raw, v)
	var err error
	if msg, ok := v.(proto.Message); ok {
		err = m.UnmarshalOptions.Unmarshal(data, msg)
	} else {
		err = m.JSONPb.Unmarshal(data, v)
	}
	if err == nil && !unknown {
		return nil
	}
	if e := check(raw, v, m.UnmarshalOptions); e != nil {
		e.err = err
		return e
	}
	if err == nil {
		return nil
	}
	return &Error{Description: sanitize(err), err: err}
}

// malformed is the error of JSON that breaks the syntax at data[i].
func malformed(data []byte, i int, err error) *Error {
	return &Error{Description: "malformed JSON at " + position(data, i), err: err}
}

// position names data[i] by line and column (in characters), from 1.
func position(data []byte, i int) string {
	i = max(0, min(i, len(data)))
	line := 1 + bytes.Count(data[:i], []byte{'\n'})
	col := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:i], '\n')+1:i])
	return fmt.Sprintf("line %d, column %d", line, col)
}

// sanitize turns an error of protojson or encoding/json that the checks
// could not explain into a stable description without the client's
// values: no "proto:" prefix (protojson randomizes its spacing), no
// position (it would be in the normalized text), nothing after the first
// quote or colon, where the decoders put excerpts of the input.
func sanitize(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "proto:")
	msg = strings.TrimLeft(msg, " \u00a0")
	msg = strings.TrimPrefix(msg, "json: ")
	msg = strings.TrimPrefix(msg, "syntax error ")
	if strings.HasPrefix(msg, "(line ") {
		if i := strings.Index(msg, "): "); i >= 0 {
			msg = msg[i+len("): "):]
		}
	}
	if strings.HasPrefix(msg, "cannot unmarshal ") { // "cannot unmarshal number 1e400 into Go value ..."
		return "a value has the wrong type"
	}
	if i := strings.IndexAny(msg, "\"'`:"); i >= 0 {
		msg = msg[:i]
	}
	if strings.HasPrefix(msg, "unexpected token") {
		msg = "unexpected token"
	}
	msg = strings.TrimRight(msg, " ,")
	if msg == "" || strings.ContainsFunc(msg, func(r rune) bool { return r < ' ' || r > '~' }) {
		return "does not match the request message"
	}
	return msg
}
