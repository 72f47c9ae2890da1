package reqdecode

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// normalize returns data with every enum value that v's type names by a
// short (or differently cased) name replaced by its full name; data comes
// back unchanged when nothing needs replacing or it is not valid JSON (the
// real decoder then reports the error). An enum that is itself the decode
// target, outside any message, is written as its number, since grpc-gateway
// decodes a bare enum only from a number. It also reports whether data
// names an enum value that does not exist: protojson, told to
// DiscardUnknown, would silently drop it, and the caller refuses it instead. Data that is not
// valid UTF-8 is left for protojson to refuse (re-encoding would repair it).
func normalize(data []byte, v any) (out []byte, unknown bool) {
	var s *shape
	if m, ok := v.(proto.Message); ok { // its type may not know its descriptor (dynamicpb)
		s = &shape{msg: m.ProtoReflect().Descriptor()}
	} else {
		s = shapeOfType(reflect.TypeOf(v))
	}
	if s == nil || !utf8.Valid(data) {
		return data, false
	}
	out, changed := s.normalize(data, false, &unknown)
	if !changed {
		return data, unknown
	}
	return out, unknown
}

// shape is the schema of a JSON value: a message, an enum, or a list or map
// of shapes. A nil *shape holds no enum.
type shape struct {
	msg  protoreflect.MessageDescriptor
	enum protoreflect.EnumDescriptor
	list *shape
	dict *shape
}

var (
	typeMessage = reflect.TypeFor[proto.Message]()
	typeEnum    = reflect.TypeFor[protoreflect.Enum]()
)

func shapeOfType(t reflect.Type) *shape {
	if t == nil {
		return nil
	}
	for {
		if t.Implements(typeMessage) {
			m, ok := reflect.Zero(t).Interface().(proto.Message)
			if !ok {
				return nil
			}
			return &shape{msg: m.ProtoReflect().Descriptor()}
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
			return nil
		}
		return &shape{enum: e.Descriptor()}
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		if el := shapeOfType(t.Elem()); el != nil {
			return &shape{list: el}
		}
	case t.Kind() == reflect.Map:
		if el := shapeOfType(t.Elem()); el != nil {
			return &shape{dict: el}
		}
	}
	return nil
}

func shapeOfField(fd protoreflect.FieldDescriptor) *shape {
	if fd.IsMap() {
		if v := shapeOfKind(fd.MapValue()); v != nil {
			return &shape{dict: v}
		}
		return nil
	}
	s := shapeOfKind(fd)
	if s != nil && fd.IsList() {
		return &shape{list: s}
	}
	return s
}

func shapeOfKind(fd protoreflect.FieldDescriptor) *shape {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		return &shape{enum: fd.Enum()}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return &shape{msg: fd.Message()}
	}
	return nil
}

// specialJSON lists the well-known types whose JSON form is not an object
// of their fields; they hold no enum a client would name.
var specialJSON = map[protoreflect.FullName]bool{
	"google.protobuf.Any": true, "google.protobuf.Struct": true, "google.protobuf.Value": true,
	"google.protobuf.ListValue": true, "google.protobuf.Timestamp": true, "google.protobuf.Duration": true,
	"google.protobuf.FieldMask": true, "google.protobuf.Empty": true,
	"google.protobuf.BoolValue": true, "google.protobuf.BytesValue": true, "google.protobuf.StringValue": true,
	"google.protobuf.DoubleValue": true, "google.protobuf.FloatValue": true,
	"google.protobuf.Int32Value": true, "google.protobuf.Int64Value": true,
	"google.protobuf.UInt32Value": true, "google.protobuf.UInt64Value": true,
}

// normalize rewrites raw against s; inMessage tells whether raw is a field
// of a message (enums by name) or the bare decode target (enums by number).
// It sets *unknown when it meets a name that no value of an enum has.
func (s *shape) normalize(raw json.RawMessage, inMessage bool, unknown *bool) (json.RawMessage, bool) {
	switch {
	case s.enum != nil:
		var name string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &name) != nil {
			return raw, false // a number, null, or garbage for protojson to judge
		}
		v := Resolve(s.enum, name)
		switch {
		case v == nil:
			*unknown = true
			return raw, false
		case !inMessage:
			return marshal(v.Number())
		case string(v.Name()) != name:
			return marshal(string(v.Name()))
		}
		return raw, false
	case s.msg != nil:
		if specialJSON[s.msg.FullName()] {
			return raw, false
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return raw, false
		}
		fields := s.msg.Fields()
		changed := false
		for k, v := range obj {
			fd := fields.ByJSONName(k)
			if fd == nil {
				fd = fields.ByTextName(k)
			}
			if fd == nil {
				continue
			}
			fs := shapeOfField(fd)
			if fs == nil {
				continue
			}
			if nv, ok := fs.normalize(v, true, unknown); ok {
				obj[k] = nv
				changed = true
			}
		}
		if !changed {
			return raw, false
		}
		return marshal(obj)
	case s.list != nil:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil || items == nil {
			return raw, false
		}
		changed := false
		for i, v := range items {
			if nv, ok := s.list.normalize(v, inMessage, unknown); ok {
				items[i] = nv
				changed = true
			}
		}
		if !changed {
			return raw, false
		}
		return marshal(items)
	case s.dict != nil:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return raw, false
		}
		changed := false
		for k, v := range obj {
			if nv, ok := s.dict.normalize(v, inMessage, unknown); ok {
				obj[k] = nv
				changed = true
			}
		}
		if !changed {
			return raw, false
		}
		return marshal(obj)
	}
	return raw, false
}

func marshal(v any) (json.RawMessage, bool) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, false
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), true
}

// Resolve returns the value of ed that name names, by its full name or its
// short form, in any case; nil when none does.
func Resolve(ed protoreflect.EnumDescriptor, name string) protoreflect.EnumValueDescriptor {
	values := ed.Values()
	if v := values.ByName(protoreflect.Name(name)); v != nil {
		return v
	}
	upper := strings.ToUpper(name)
	for _, p := range prefixes(ed) {
		if v := values.ByName(protoreflect.Name(p + upper)); v != nil {
			return v
		}
	}
	return nil
}

var prefixCache sync.Map // protoreflect.FullName → []string

// prefixes returns the prefixes that a short form may omit: none, the
// enum's name in UPPER_SNAKE_CASE with an underscore (what buf lint
// requires), and the longest prefix ending in an underscore that every
// value shares (for enums named otherwise).
func prefixes(ed protoreflect.EnumDescriptor) []string {
	if p, ok := prefixCache.Load(ed.FullName()); ok {
		return p.([]string)
	}
	ps := []string{""}
	values := ed.Values()
	if values.Len() > 0 {
		named := upperSnake(string(ed.Name())) + "_"
		common := string(values.Get(0).Name())
		allNamed := true
		for i := range values.Len() {
			n := string(values.Get(i).Name())
			allNamed = allNamed && strings.HasPrefix(n, named)
			for !strings.HasPrefix(n, common) {
				common = common[:len(common)-1]
			}
		}
		common = common[:strings.LastIndexByte(common, '_')+1]
		if allNamed {
			ps = append(ps, named)
		}
		if common != "" && common != named {
			ps = append(ps, common)
		}
	}
	prefixCache.Store(ed.FullName(), ps)
	return ps
}

// choices describes the values of ed that a client may name, for an error
// message: "one of PROVIDER_IMPORT, PROVIDER_GMAIL, PROVIDER_IMAP (or
// IMPORT, GMAIL, IMAP)". A zero value named *_UNSPECIFIED is left out.
func choices(ed protoreflect.EnumDescriptor) string {
	if c, ok := choicesCache.Load(ed.FullName()); ok {
		return c.(string)
	}
	ps := prefixes(ed)
	short := ps[len(ps)-1] // the longest prefix every value shares
	var full, brief []string
	values := ed.Values()
	for i := range values.Len() {
		v := values.Get(i)
		name := string(v.Name())
		if v.Number() == 0 && strings.HasSuffix(name, "UNSPECIFIED") {
			continue
		}
		full = append(full, name)
		brief = append(brief, strings.TrimPrefix(name, short))
	}
	c := "one of " + strings.Join(full, ", ")
	if len(full) == 0 {
		c = "a value of " + string(ed.Name())
	} else if short != "" {
		c += " (or " + strings.Join(brief, ", ") + ")"
	}
	choicesCache.Store(ed.FullName(), c)
	return c
}

var choicesCache sync.Map // protoreflect.FullName → string

// upperSnake turns a CamelCase name into UPPER_SNAKE_CASE: ImapSecurity →
// IMAP_SECURITY, HTTPMethod → HTTP_METHOD.
func upperSnake(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		isUpper := 'A' <= c && c <= 'Z'
		if i > 0 && isUpper {
			prev := s[i-1]
			prevLowerOrDigit := ('a' <= prev && prev <= 'z') || ('0' <= prev && prev <= '9')
			nextLower := i+1 < len(s) && 'a' <= s[i+1] && s[i+1] <= 'z'
			prevUpper := 'A' <= prev && prev <= 'Z'
			if prevLowerOrDigit || (prevUpper && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteByte(c)
	}
	return strings.ToUpper(b.String())
}
