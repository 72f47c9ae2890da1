package reqdecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// check walks raw, one syntactically valid JSON value, against the type of
// v the way grpc-gateway decodes it (protojson for messages) and returns
// the first problem it finds, or nil when it finds none. It follows
// protojson's rules (with short enum names and DiscardUnknown) and asks
// protojson itself whether a leaf value is acceptable, so that it does not
// blame a value the decoder would take.
func check(raw []byte, v any, opts protojson.UnmarshalOptions) *Error {
	if !utf8.Valid(raw) {
		return &Error{Description: "invalid UTF-8 at " + position(raw, invalidUTF8(raw))}
	}
	if opts.Resolver == nil {
		opts.Resolver = protoregistry.GlobalTypes
	}
	w := &walker{data: raw, dec: json.NewDecoder(bytes.NewReader(raw)), opts: opts}
	w.dec.UseNumber()
	var err error
	if m, ok := v.(proto.Message); ok { // its type may not know its descriptor (dynamicpb)
		if err = w.next(); err == nil {
			err = w.message("", m.ProtoReflect().Descriptor())
		}
	} else {
		err = w.goValue("", reflect.TypeOf(v))
	}
	if e := (*Error)(nil); errors.As(err, &e) {
		return e
	}
	return nil
}

func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// walker reads data token by token along the schema.
type walker struct {
	data []byte
	dec  *json.Decoder
	opts protojson.UnmarshalOptions
	// the token last read and where it starts in data
	tok   json.Token
	start int
}

// errStop ends a walk that cannot go on (it should not happen: data is
// valid JSON).
var errStop = errors.New("reqdecode: walk stopped")

// next reads the next token into w.tok.
func (w *walker) next() error {
	off := int(w.dec.InputOffset())
	tok, err := w.dec.Token()
	if err != nil {
		return errStop
	}
	// The token starts after the separators that Token consumed with it.
	for off < len(w.data) && strings.IndexByte(" \t\r\n:,", w.data[off]) >= 0 {
		off++
	}
	w.tok, w.start = tok, off
	return nil
}

// raw returns the text of the leaf token last read.
func (w *walker) raw() []byte { return w.data[w.start:w.dec.InputOffset()] }

// skip skips the rest of the value whose first token was just read.
func (w *walker) skip() error {
	for depth := 0; ; {
		switch w.tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
		if err := w.next(); err != nil {
			return err
		}
	}
}

// elements walks the elements of the list whose '[' was just read.
func (w *walker) elements(path string, elem func(path string) error) error {
	for i := 0; w.dec.More(); i++ {
		if err := w.next(); err != nil {
			return err
		}
		if err := elem(path + "[" + strconv.Itoa(i) + "]"); err != nil {
			return err
		}
	}
	return w.next() // ']'
}

// entries walks the entries of the map whose '{' was just read; key says
// whether a key is valid and returns the map key it stands for.
func (w *walker) entries(path string, key func(string) (any, bool), value func(path string) error) error {
	seen := map[any]bool{}
	for i := 0; w.dec.More(); i++ {
		if err := w.next(); err != nil {
			return err
		}
		name, _ := w.tok.(string)
		entry := path + "[#" + strconv.Itoa(i) + "]"
		k, ok := key(name)
		if !ok {
			return &Error{Field: entry, Description: "key is not valid for this map"}
		}
		if seen[k] {
			return &Error{Field: entry, Description: "duplicate key"}
		}
		seen[k] = true
		if err := w.next(); err != nil {
			return err
		}
		if err := value(entry); err != nil {
			return err
		}
	}
	return w.next() // '}'
}

// kindOf names the JSON type of a value by its first token.
func kindOf(tok json.Token) string {
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '{' {
			return "an object"
		}
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// mismatch is the error of a value of the wrong JSON type.
func (w *walker) mismatch(path, want string) error {
	return &Error{Field: path, Description: "want " + want + ", got " + kindOf(w.tok)}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// goValue walks the value that grpc-gateway decodes into a Go value of
// type t (see runtime.JSONPb): protojson for a message, encoding/json for
// a scalar, element by element for a slice or map.
func (w *walker) goValue(path string, t reflect.Type) error {
	if err := w.next(); err != nil {
		return err
	}
	return w.goValueRead(path, t)
}

func (w *walker) goValueRead(path string, t reflect.Type) error {
	for {
		if t.Implements(typeMessage) {
			m, ok := reflect.Zero(t).Interface().(proto.Message)
			if !ok {
				return errStop
			}
			return w.message(path, m.ProtoReflect().Descriptor())
		}
		if t.Kind() != reflect.Pointer {
			break
		}
		t = t.Elem()
	}
	switch {
	case t.Implements(typeEnum):
		e, ok := reflect.Zero(t).Interface().(protoreflect.Enum)
		if !ok {
			return errStop
		}
		return w.enum(path, e.Descriptor())
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		switch w.tok {
		case nil:
			return nil
		case json.Delim('['):
			return w.elements(path, func(path string) error { return w.goValueRead(path, t.Elem()) })
		}
		return w.mismatch(path, "a list")
	case t.Kind() == reflect.Map:
		switch w.tok {
		case nil:
			return nil
		case json.Delim('{'):
			conv, ok := keyConverters[t.Key().Kind()]
			if !ok {
				return errStop
			}
			key := func(name string) (any, bool) {
				out := conv.Call([]reflect.Value{reflect.ValueOf(name)})
				if !out[1].IsNil() {
					return nil, false
				}
				return out[0].Interface(), true
			}
			return w.entries(path, key, func(path string) error { return w.goValueRead(path, t.Elem()) })
		}
		return w.mismatch(path, "an object")
	}
	return w.goScalar(path, t)
}

// keyConverters are grpc-gateway's conversions of map keys (see
// decodeNonProtoField in runtime/marshal_jsonpb.go).
var keyConverters = map[reflect.Kind]reflect.Value{
	reflect.String:  reflect.ValueOf(runtime.String),
	reflect.Bool:    reflect.ValueOf(runtime.Bool),
	reflect.Float64: reflect.ValueOf(runtime.Float64),
	reflect.Float32: reflect.ValueOf(runtime.Float32),
	reflect.Int64:   reflect.ValueOf(runtime.Int64),
	reflect.Int32:   reflect.ValueOf(runtime.Int32),
	reflect.Uint64:  reflect.ValueOf(runtime.Uint64),
	reflect.Uint32:  reflect.ValueOf(runtime.Uint32),
}

// goScalar walks a value that encoding/json decodes into a Go scalar of
// type t.
func (w *walker) goScalar(path string, t reflect.Type) error {
	var want string
	kind := t.Kind()
	switch kind {
	case reflect.String:
		want = "a string"
	case reflect.Bool:
		want = "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		want = "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		want = "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		want = "a number"
	case reflect.Slice:
		want = "a base64 string"
	default:
		return errStop
	}
	if _, ok := w.tok.(json.Delim); ok {
		return w.mismatch(path, want)
	}
	if json.Unmarshal(w.raw(), reflect.New(t).Interface()) == nil {
		return nil
	}
	switch tok := w.tok.(type) {
	case json.Number:
		if kind != reflect.String && kind != reflect.Bool && kind != reflect.Slice {
			return &Error{Field: path, Description: numberProblem(string(tok), kind != reflect.Float32 && kind != reflect.Float64, kind.String())}
		}
	case string:
		if kind == reflect.Slice {
			return &Error{Field: path, Description: "not valid base64"}
		}
	}
	return w.mismatch(path, want)
}

// message walks a value of a message type, as protojson reads it.
func (w *walker) message(path string, md protoreflect.MessageDescriptor) error {
	switch md.FullName() {
	case "google.protobuf.Any":
		return w.anyValue(path)
	case "google.protobuf.Timestamp":
		return w.stringForm(path, &timestamppb.Timestamp{}, "an RFC 3339 string", "not a valid RFC 3339 timestamp")
	case "google.protobuf.Duration":
		return w.stringForm(path, &durationpb.Duration{}, `a duration string such as "1.5s"`, `not a valid duration (want seconds with an "s" suffix, such as "1.5s")`)
	case "google.protobuf.FieldMask":
		return w.stringForm(path, &fieldmaskpb.FieldMask{}, "a string of comma-separated field paths", "not a valid field mask (want comma-separated lowerCamelCase paths)")
	case "google.protobuf.BoolValue", "google.protobuf.BytesValue", "google.protobuf.StringValue",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt32Value", "google.protobuf.UInt64Value":
		return w.scalar(path, md.Fields().ByNumber(1).Kind())
	case "google.protobuf.Struct":
		if w.tok != json.Delim('{') {
			return w.mismatch(path, "an object")
		}
		return w.entries(path, stringKey, w.anyJSON)
	case "google.protobuf.ListValue":
		if w.tok != json.Delim('[') {
			return w.mismatch(path, "a list")
		}
		return w.elements(path, w.anyJSON)
	case "google.protobuf.Value":
		return w.anyJSON(path)
	case "google.protobuf.Empty":
		if w.tok != json.Delim('{') {
			return w.mismatch(path, "an object")
		}
		return w.skip() // unknown fields are discarded
	}

	if w.tok != json.Delim('{') {
		return w.mismatch(path, "an object")
	}
	seen := map[protoreflect.FieldNumber]bool{}
	oneofs := map[int]bool{}
	for w.dec.More() {
		if err := w.next(); err != nil {
			return err
		}
		name, _ := w.tok.(string)
		fd, err := w.field(path, md, name)
		if err != nil {
			return err
		}
		if err := w.next(); err != nil {
			return err
		}
		if fd == nil { // unknown, discarded
			if err := w.skip(); err != nil {
				return err
			}
			continue
		}
		fpath := joinPath(path, name)
		if seen[fd.Number()] {
			return &Error{Field: fpath, Description: "duplicate field"}
		}
		seen[fd.Number()] = true
		if w.tok == nil && !nullable(fd) { // null is the default value
			continue
		}
		switch {
		case fd.IsList():
			if w.tok != json.Delim('[') {
				return w.mismatch(fpath, "a list")
			}
			err = w.elements(fpath, func(path string) error { return w.singular(path, fd) })
		case fd.IsMap():
			if w.tok != json.Delim('{') {
				return w.mismatch(fpath, "an object")
			}
			err = w.entries(fpath, mapKey(fd.MapKey().Kind()), func(path string) error { return w.singular(path, fd.MapValue()) })
		default:
			if od := fd.ContainingOneof(); od != nil {
				if oneofs[od.Index()] {
					return &Error{Field: fpath, Description: "another field of oneof " + string(od.Name()) + " is already set"}
				}
				oneofs[od.Index()] = true
			}
			err = w.singular(fpath, fd)
		}
		if err != nil {
			return err
		}
	}
	return w.next() // '}'
}

// field returns the field of md that a JSON key names, as protojson finds
// it (JSON name, proto name, or [extension name]); nil for an unknown one.
func (w *walker) field(path string, md protoreflect.MessageDescriptor, name string) (protoreflect.FieldDescriptor, error) {
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		xt, err := w.opts.Resolver.FindExtensionByName(protoreflect.FullName(name[1 : len(name)-1]))
		switch {
		case errors.Is(err, protoregistry.NotFound):
			return nil, nil
		case err != nil:
			return nil, errStop
		}
		fd := xt.TypeDescriptor()
		if !md.ExtensionRanges().Has(fd.Number()) || fd.ContainingMessage().FullName() != md.FullName() {
			return nil, &Error{Field: joinPath(path, name), Description: "not an extension of " + string(md.FullName())}
		}
		return fd, nil
	}
	fields := md.Fields()
	if fd := fields.ByJSONName(name); fd != nil {
		return fd, nil
	}
	return fields.ByTextName(name), nil
}

// nullable reports whether null is a value of fd rather than its absence.
func nullable(fd protoreflect.FieldDescriptor) bool {
	if md := fd.Message(); md != nil {
		return md.FullName() == "google.protobuf.Value"
	}
	if ed := fd.Enum(); ed != nil {
		return ed.FullName() == "google.protobuf.NullValue"
	}
	return false
}

// mapKey returns the parser of map keys of the given kind, as protojson
// parses them.
func mapKey(kind protoreflect.Kind) func(string) (any, bool) {
	parse := func(name string) (any, error) {
		switch kind {
		case protoreflect.StringKind:
			return name, nil
		case protoreflect.BoolKind:
			return strconv.ParseBool(name)
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			return strconv.ParseInt(name, 10, 32)
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return strconv.ParseInt(name, 10, 64)
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			return strconv.ParseUint(name, 10, 32)
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return strconv.ParseUint(name, 10, 64)
		}
		return nil, errStop
	}
	return func(name string) (any, bool) {
		if kind == protoreflect.BoolKind && name != "true" && name != "false" {
			return nil, false // strconv.ParseBool takes more spellings than protojson
		}
		k, err := parse(name)
		return k, err == nil
	}
}

func stringKey(name string) (any, bool) { return name, true }

// singular walks one value of fd's type (an element, if fd is repeated).
func (w *walker) singular(path string, fd protoreflect.FieldDescriptor) error {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.message(path, fd.Message())
	case protoreflect.EnumKind:
		return w.enum(path, fd.Enum())
	}
	return w.scalar(path, fd.Kind())
}

// enum walks an enum value: a name, full or short, or an int32 number.
func (w *walker) enum(path string, ed protoreflect.EnumDescriptor) error {
	switch tok := w.tok.(type) {
	case string:
		if Resolve(ed, tok) != nil {
			return nil
		}
		return &Error{Field: path, Description: "unknown value; want " + choices(ed)}
	case json.Number:
		if accepts(protoreflect.Int32Kind, w.raw()) {
			return nil
		}
		return &Error{Field: path, Description: numberProblem(string(tok), true, "an enum number")}
	case nil:
		if ed.FullName() == "google.protobuf.NullValue" {
			return nil
		}
	}
	return w.mismatch(path, choices(ed))
}

// scalar walks a value of a scalar kind.
func (w *walker) scalar(path string, kind protoreflect.Kind) error {
	want := scalarWant(kind)
	if _, ok := w.tok.(json.Delim); ok {
		return w.mismatch(path, want)
	}
	if accepts(kind, w.raw()) {
		return nil
	}
	integer := kind != protoreflect.FloatKind && kind != protoreflect.DoubleKind
	switch tok := w.tok.(type) {
	case json.Number:
		if numeric(kind) {
			return &Error{Field: path, Description: numberProblem(string(tok), integer, kind.String())}
		}
	case string:
		switch {
		case kind == protoreflect.BytesKind:
			return &Error{Field: path, Description: "not valid base64"}
		case numeric(kind) && numberText.MatchString(tok):
			return &Error{Field: path, Description: numberProblem(tok, integer, kind.String())}
		case numeric(kind):
			return &Error{Field: path, Description: "want " + want + ", got a non-numeric string"}
		}
	}
	return w.mismatch(path, want)
}

// numberText matches a JSON number, which protojson also takes quoted for
// a numeric field.
var numberText = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

func numeric(kind protoreflect.Kind) bool {
	switch kind {
	case protoreflect.BoolKind, protoreflect.StringKind, protoreflect.BytesKind, protoreflect.EnumKind,
		protoreflect.MessageKind, protoreflect.GroupKind:
		return false
	}
	return true
}

// scalarWant says what JSON a field of a scalar kind takes.
func scalarWant(kind protoreflect.Kind) string {
	switch kind {
	case protoreflect.BoolKind:
		return "a boolean"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BytesKind:
		return "a base64 string"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number (or a numeric string)"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "a non-negative integer (a number or a numeric string)"
	}
	return "an integer (a number or a numeric string)"
}

// numberProblem says why a number that has the right JSON type is not
// acceptable: a fraction where an integer is due, or out of range.
func numberProblem(text string, integer bool, what string) string {
	f, ok := new(big.Float).SetString(text)
	if ok && integer && !f.IsInt() {
		return "not an integer"
	}
	return "out of range for " + what
}

// accepts reports whether protojson takes raw, one JSON value, for a
// field of the given scalar kind: the wrapper types' JSON form is exactly
// that of their value field.
func accepts(kind protoreflect.Kind, raw []byte) bool {
	var m proto.Message
	switch kind {
	case protoreflect.BoolKind:
		m = &wrapperspb.BoolValue{}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		m = &wrapperspb.Int32Value{}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		m = &wrapperspb.Int64Value{}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		m = &wrapperspb.UInt32Value{}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		m = &wrapperspb.UInt64Value{}
	case protoreflect.FloatKind:
		m = &wrapperspb.FloatValue{}
	case protoreflect.DoubleKind:
		m = &wrapperspb.DoubleValue{}
	case protoreflect.StringKind:
		m = &wrapperspb.StringValue{}
	case protoreflect.BytesKind:
		m = &wrapperspb.BytesValue{}
	default:
		return false
	}
	return protojson.Unmarshal(raw, m) == nil
}

// stringForm walks a well-known type written as a string (Timestamp,
// Duration, FieldMask); m is a message of that type.
func (w *walker) stringForm(path string, m proto.Message, want, invalid string) error {
	if _, ok := w.tok.(string); !ok {
		return w.mismatch(path, want)
	}
	if protojson.Unmarshal(w.raw(), m) != nil {
		return &Error{Field: path, Description: invalid}
	}
	return nil
}

// anyJSON walks a google.protobuf.Value: any JSON, with finite numbers.
func (w *walker) anyJSON(path string) error {
	switch tok := w.tok.(type) {
	case json.Delim:
		if tok == '{' {
			return w.entries(path, stringKey, w.anyJSON)
		}
		return w.elements(path, w.anyJSON)
	case json.Number:
		if !accepts(protoreflect.DoubleKind, w.raw()) {
			return &Error{Field: path, Description: "out of range for a number"}
		}
	}
	return nil
}

// anyValue walks a google.protobuf.Any, which protojson alone can judge:
// its form depends on the type that its "@type" names.
func (w *walker) anyValue(path string) error {
	if w.tok != json.Delim('{') {
		return w.mismatch(path, "an object")
	}
	start := w.start
	if err := w.skip(); err != nil {
		return err
	}
	if w.opts.Unmarshal(w.data[start:w.dec.InputOffset()], &anypb.Any{}) != nil {
		return &Error{Field: path, Description: `not a valid google.protobuf.Any (want "@type" naming a known message, and that message's fields)`}
	}
	return nil
}
