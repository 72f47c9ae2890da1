package resname_test

import (
	"slices"
	"testing"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		pattern, name string
		want          []string
	}{
		{"users/*", "users/ada", []string{"ada"}},
		{"users/*/messages/*", "users/me/messages/0af3", []string{"me", "0af3"}},
		{"users/*/mailboxes/*", "users/ada/messages/x", nil},
		{"users/*", "users/Ada", nil},
		{"users/*", "users/a/b", nil},
		{"users/*", "users/", nil},
		{"users/*", "", nil},
		{"users/*", "users/a.b", nil},
		{"users/*", "users/" + string(make([]byte, 64)), nil},
	} {
		got, err := resname.Parse("name", tt.pattern, tt.name)
		if tt.want == nil {
			if apierror.KindOf(err) != apierror.InvalidArgument {
				t.Errorf("Parse(%q, %q) = %v, %v; want InvalidArgument", tt.pattern, tt.name, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Parse(%q, %q) = %v, %v; want %v", tt.pattern, tt.name, got, err, tt.want)
		}
	}
}
