package protoenum_test

import (
	"testing"

	mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"
	"mailroom.dev/platform/protoenum"
)

// Every value of the three enums has a name that maps back to it, and the
// zero value and an unknown name meet at "" and unspecified.
func TestNamesRoundTrip(t *testing.T) {
	for v := range mailv1.Lane_name {
		l := mailv1.Lane(v)
		if got := protoenum.Lane(protoenum.LaneName(l)); got != l {
			t.Errorf("Lane(LaneName(%v)) = %v", l, got)
		}
	}
	for v := range mailv1.Priority_name {
		p := mailv1.Priority(v)
		if got := protoenum.Priority(protoenum.PriorityName(p)); got != p {
			t.Errorf("Priority(PriorityName(%v)) = %v", p, got)
		}
	}
	for v := range mailv1.ClassificationSource_name {
		s := mailv1.ClassificationSource(v)
		if got := protoenum.Source(protoenum.SourceName(s)); got != s {
			t.Errorf("Source(SourceName(%v)) = %v", s, got)
		}
	}
	if protoenum.LaneName(0) != "" || protoenum.Lane("urgent") != 0 || protoenum.Priority("") != 0 {
		t.Error("the zero value, the empty name and unknown names do not meet")
	}
	if got := protoenum.LaneName(mailv1.Lane_LANE_BACKFILL); got != "backfill" {
		t.Errorf("LaneName(BACKFILL) = %q", got)
	}
}
