package reqdecode

import (
	"errors"
	"testing"
)

// sanitize is the last resort for errors that the checks cannot explain;
// these are the shapes of protojson's and encoding/json's messages.
func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"proto:\u00a0syntax error (line 1:14): unexpected token \"Dinner\"", "unexpected token"},
		{"proto: syntax error (line 1:14): unexpected token 12345", "unexpected token"},
		{"proto: (line 1:9): invalid value for int32 field pageSize: \"Dinner\"", "invalid value for int32 field pageSize"},
		{"proto:\u00a0(line 1:2): duplicate field \"text\"", "duplicate field"},
		{"proto: (line 3:1): invalid google.protobuf.Timestamp value \"Dinner\"", "invalid google.protobuf.Timestamp value"},
		{"proto: required field a.B.c not set", "required field a.B.c not set"},
		{"proto: exceeded max recursion depth", "exceeded max recursion depth"},
		{"json: cannot unmarshal number 1e400 into Go value of type float64", "a value has the wrong type"},
		{"unmarshaling of symbolic enum \"Dinner\" not supported: v1.Mode", "unmarshaling of symbolic enum"},
		{"proto: \"Dinner\"", "does not match the request message"},
		{"proto: D\u00efnner", "does not match the request message"},
	}
	for _, tt := range tests {
		if got := sanitize(errors.New(tt.in)); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
