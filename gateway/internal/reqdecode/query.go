package reqdecode

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// QueryParser is grpc-gateway's default query parameter parser, with short
// enum names resolved first and an *Error, naming the parameter and what it
// wants, when parsing fails.
type QueryParser struct {
	runtime.DefaultQueryParser
}

// Parse populates values into msg.
func (p *QueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	values = NormalizeQuery(msg.ProtoReflect().Descriptor(), values)
	err := p.DefaultQueryParser.Parse(msg, values, filter)
	if err == nil {
		return nil
	}
	e := checkQuery(msg, values, filter)
	if e == nil {
		e = &Error{query: true, Description: "cannot be applied to this request"}
	}
	e.err = err
	return e
}

// NormalizeQuery returns values with the values of enum fields of md (named
// by dotted paths of proto or JSON names) resolved to their full names.
// values itself is not modified.
func NormalizeQuery(md protoreflect.MessageDescriptor, values url.Values) url.Values {
	var out url.Values
	for key, vs := range values {
		ed := queryEnum(md, key)
		if ed == nil {
			continue
		}
		var nvs []string
		for i, v := range vs {
			ev := Resolve(ed, v)
			if ev == nil || string(ev.Name()) == v {
				continue
			}
			if nvs == nil {
				nvs = append([]string(nil), vs...)
			}
			nvs[i] = string(ev.Name())
		}
		if nvs == nil {
			continue
		}
		if out == nil {
			out = make(url.Values, len(values))
			for k, v := range values {
				out[k] = v
			}
		}
		out[key] = nvs
	}
	if out == nil {
		return values
	}
	return out
}

// queryEnum returns the enum type of the (possibly repeated) field that key
// names, or nil.
func queryEnum(md protoreflect.MessageDescriptor, key string) protoreflect.EnumDescriptor {
	parts := strings.Split(key, ".")
	for i, part := range parts {
		fields := md.Fields()
		fd := fields.ByTextName(part)
		if fd == nil {
			fd = fields.ByJSONName(part)
		}
		if fd == nil || fd.IsMap() {
			return nil
		}
		if i == len(parts)-1 {
			return fd.Enum()
		}
		if fd.Message() == nil || fd.IsList() {
			return nil
		}
		md = fd.Message()
	}
	return nil
}

// checkQuery finds the parameter that grpc-gateway's parser refused, going
// through the keys in order: first each alone (a bad value, two values for
// a singular field, a path through a non-message), then together (two
// spellings of one field, two fields of one oneof). It returns nil when it
// finds nothing.
func checkQuery(msg proto.Message, values url.Values, filter *utilities.DoubleArray) *Error {
	md := msg.ProtoReflect().Descriptor()
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	var parser runtime.DefaultQueryParser
	for _, key := range keys {
		scratch := msg.ProtoReflect().New().Interface()
		if parser.Parse(scratch, url.Values{key: values[key]}, filter) == nil {
			continue
		}
		if e := checkParam(md, key, values[key]); e != nil {
			return e
		}
		return &Error{query: true, Field: displayKey(key), Description: "not valid for this field"}
	}

	seen := map[string]string{}
	scratch := msg.ProtoReflect().New().Interface()
	for _, key := range keys {
		fieldKey, mapKey, isMap := splitMapKey(key)
		path := normalizeFieldPath(md, strings.Split(fieldKey, "."))
		if filtered(filter, path) {
			continue
		}
		field := strings.Join(path, ".")
		if isMap {
			field += "[" + mapKey + "]"
		}
		if other, ok := seen[field]; ok {
			return &Error{query: true, Field: displayKey(key), Description: "sets the same field as " + displayKey(other)}
		}
		seen[field] = key
		if parser.Parse(scratch, url.Values{key: values[key]}, filter) == nil {
			continue
		}
		if fd := queryField(md, fieldKey); fd != nil {
			if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
				return &Error{query: true, Field: displayKey(key), Description: "another field of oneof " + string(od.Name()) + " is already set"}
			}
		}
		return &Error{query: true, Field: displayKey(key), Description: "conflicts with another parameter"}
	}
	return nil
}

// mapKeySyntax is grpc-gateway's name[key] syntax for a map entry.
var mapKeySyntax = regexp.MustCompile(`^(.*)\[(.*)\]$`)

func splitMapKey(key string) (fieldKey, mapKey string, ok bool) {
	if m := mapKeySyntax.FindStringSubmatch(key); m != nil {
		return m[1], m[2], true
	}
	return key, "", false
}

// displayKey names a parameter in an error without the key of a map entry,
// which is the client's data.
func displayKey(key string) string {
	if fieldKey, _, ok := splitMapKey(key); ok {
		return fieldKey + "[...]"
	}
	return key
}

// normalizeFieldPath turns a parameter's path into proto names, as
// grpc-gateway does to notice two spellings of one field.
func normalizeFieldPath(md protoreflect.MessageDescriptor, parts []string) []string {
	out := make([]string, 0, len(parts))
	for i, part := range parts {
		fields := md.Fields()
		fd := fields.ByTextName(part)
		if fd == nil {
			fd = fields.ByJSONName(part)
		}
		if fd == nil {
			return parts
		}
		out = append(out, string(fd.Name()))
		if i == len(parts)-1 {
			break
		}
		if fd.Message() == nil || fd.Cardinality() == protoreflect.Repeated {
			return parts
		}
		md = fd.Message()
	}
	return out
}

// filtered reports whether grpc-gateway skips a parameter with this path:
// it is (in) a field bound from the URL path or the body, or contains one.
func filtered(filter *utilities.DoubleArray, path []string) bool {
	if filter == nil || len(filter.Base) == 0 {
		return false
	}
	if filter.HasCommonPrefix(path) {
		return true
	}
	i := 0
	for _, part := range path {
		code, ok := filter.Encoding[part]
		if !ok {
			return false
		}
		j := filter.Base[i] + code
		if len(filter.Check) <= j || filter.Check[j] != i+1 {
			return false
		}
		i = j
	}
	return true
}

// queryField returns the field a parameter's path names the way
// grpc-gateway's parser finds it, or nil.
func queryField(md protoreflect.MessageDescriptor, fieldKey string) protoreflect.FieldDescriptor {
	parts := strings.Split(fieldKey, ".")
	for i, part := range parts {
		fields := md.Fields()
		fd := fields.ByName(protoreflect.Name(part))
		if fd == nil {
			fd = fields.ByJSONName(part)
		}
		if fd == nil {
			return nil
		}
		if i == len(parts)-1 {
			return fd
		}
		if fd.Message() == nil || fd.Cardinality() == protoreflect.Repeated {
			return nil
		}
		md = fd.Message()
	}
	return nil
}

// checkParam says what is wrong with one parameter on its own, or nil.
func checkParam(md protoreflect.MessageDescriptor, key string, values []string) *Error {
	fieldKey, mapKey, isMap := splitMapKey(key)
	bad := func(desc string) *Error { return &Error{query: true, Field: displayKey(key), Description: desc} }
	parts := strings.Split(fieldKey, ".")
	var fd protoreflect.FieldDescriptor
	for i, part := range parts {
		fields := md.Fields()
		fd = fields.ByName(protoreflect.Name(part))
		if fd == nil {
			fd = fields.ByJSONName(part)
		}
		if fd == nil {
			return nil // ignored by the parser
		}
		if i == len(parts)-1 {
			break
		}
		if fd.Message() == nil || fd.Cardinality() == protoreflect.Repeated {
			return bad(part + " is not a message field")
		}
		md = fd.Message()
	}
	switch {
	case isMap && !fd.IsMap():
		return bad("not a map field")
	case fd.IsMap() && !isMap:
		return bad("set a map entry as " + fieldKey + "[key]=value")
	case fd.IsMap():
		if len(values) != 1 {
			return bad("given more than once")
		}
		if queryProblem(fd.MapKey(), mapKey) != "" {
			return bad("key is not valid for this map")
		}
		if p := queryProblem(fd.MapValue(), values[0]); p != "" {
			return bad(p)
		}
		return nil
	case !fd.IsList() && len(values) > 1:
		return bad("given more than once")
	}
	for _, v := range values {
		if p := queryProblem(fd, v); p != "" {
			return bad(p)
		}
	}
	return nil
}

// queryProblem says why grpc-gateway's parser refuses v for fd, without
// repeating v; "" when it takes it.
func queryProblem(fd protoreflect.FieldDescriptor, v string) string {
	kind := fd.Kind()
	switch kind {
	case protoreflect.BoolKind:
		if _, err := strconv.ParseBool(v); err != nil {
			return "want true or false"
		}
	case protoreflect.EnumKind:
		values := fd.Enum().Values()
		if values.ByName(protoreflect.Name(v)) != nil {
			return ""
		}
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && values.ByNumber(protoreflect.EnumNumber(n)) != nil {
			return ""
		}
		return "unknown value; want " + choices(fd.Enum())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		bits := 64
		if kind == protoreflect.Int32Kind || kind == protoreflect.Sint32Kind || kind == protoreflect.Sfixed32Kind {
			bits = 32
		}
		_, err := strconv.ParseInt(v, 10, bits)
		return intProblem(err, kind, "an integer")
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		bits := 64
		if kind == protoreflect.Uint32Kind || kind == protoreflect.Fixed32Kind {
			bits = 32
		}
		_, err := strconv.ParseUint(v, 10, bits)
		if err != nil && strings.HasPrefix(v, "-") {
			if _, ierr := strconv.ParseInt(v, 10, 64); ierr == nil || errors.Is(ierr, strconv.ErrRange) {
				return "out of range for " + kind.String()
			}
		}
		return intProblem(err, kind, "a non-negative integer")
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		var err error
		if kind == protoreflect.FloatKind {
			_, err = runtime.Float32(v)
		} else {
			_, err = runtime.Float64(v)
		}
		return intProblem(err, kind, "a number")
	case protoreflect.BytesKind:
		if _, err := runtime.Bytes(v); err != nil {
			return "not valid base64"
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageQueryProblem(fd.Message(), v)
	}
	return ""
}

func intProblem(err error, kind protoreflect.Kind, want string) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, strconv.ErrRange):
		return "out of range for " + kind.String()
	}
	return "want " + want
}

// messageQueryProblem is queryProblem for the message types that
// grpc-gateway's parser takes from a query parameter.
func messageQueryProblem(md protoreflect.MessageDescriptor, v string) string {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return "want an RFC 3339 timestamp"
		}
		if !timestamppb.New(t).IsValid() {
			return "out of range for a timestamp"
		}
	case "google.protobuf.Duration":
		if _, err := time.ParseDuration(v); err != nil {
			return `want a duration such as "1.5s" or "1h30m"`
		}
	case "google.protobuf.BoolValue", "google.protobuf.BytesValue", "google.protobuf.StringValue",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue",
		"google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.UInt32Value", "google.protobuf.UInt64Value":
		return queryProblem(md.Fields().ByNumber(1), v)
	case "google.protobuf.FieldMask":
	case "google.protobuf.Value":
		if protojson.Unmarshal([]byte(v), &structpb.Value{}) != nil {
			return "want a JSON value"
		}
	case "google.protobuf.Struct":
		if protojson.Unmarshal([]byte(v), &structpb.Struct{}) != nil {
			return "want a JSON object"
		}
	case "google.protobuf.Empty":
		if v != "" && v != "{}" {
			return `want nothing or "{}"`
		}
	default:
		return "cannot be set from a query parameter"
	}
	return ""
}
