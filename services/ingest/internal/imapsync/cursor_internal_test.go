package imapsync

import "testing"

// TestPositionReadsTheCursorOfBeforeFolders: a cursor stored before
// folders (INBOX's alone) is INBOX's position, so an upgrade neither
// refetches nor skips anything.
func TestPositionReadsTheCursorOfBeforeFolders(t *testing.T) {
	p, err := parsePosition(`{"uidValidity":7,"lastUid":42}`)
	if err != nil || len(p.Folders) != 1 || p.Folders["INBOX"] != (cursor{UIDValidity: 7, LastUID: 42}) {
		t.Errorf("old cursor = %+v, %v", p, err)
	}
	p, err = parsePosition(`{"folders":{"INBOX":{"uidValidity":7,"lastUid":42},"Archive":{"uidValidity":3,"lastUid":5,"backfill":true}}}`)
	if err != nil || p.Folders["Archive"] != (cursor{UIDValidity: 3, LastUID: 5, Backfill: true}) || p.Folders["INBOX"].LastUID != 42 {
		t.Errorf("cursor = %+v, %v", p, err)
	}
	if back, _ := parsePosition(p.String()); len(back.Folders) != 2 {
		t.Errorf("round trip = %+v", back)
	}
}
