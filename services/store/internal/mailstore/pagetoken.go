package mailstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"time"

	"mailroom.dev/platform/apierror"
)

// A page token is the keyset cursor of the last message of a page (its
// received time and id), bound to the user and the canonical filter by a
// hash, as opaque base64url JSON. It needs no signature: whatever a caller
// puts in it, the query stays inside the caller's own messages.
type pageToken struct {
	Version int    `json:"v"`
	Binding string `json:"b"`
	Micros  int64  `json:"t"`
	ID      string `json:"i"`
}

const pageTokenVersion = 1

func binding(user string, f Filter) string {
	h := sha256.Sum256([]byte("mailroom.store.v1.ListMessages\x00" + user + "\x00" + f.String()))
	return hex.EncodeToString(h[:8])
}

func encodePageToken(user string, f Filter, c Cursor) string {
	b, _ := json.Marshal(pageToken{
		Version: pageTokenVersion,
		Binding: binding(user, f),
		Micros:  c.ReceivedTime.UnixMicro(),
		ID:      c.ID,
	})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodePageToken(user string, f Filter, s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var t pageToken
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil || t.Version != pageTokenVersion || t.ID == "" {
		return nil, apierror.Invalid("page_token", "is not a page token of ListMessages")
	}
	if t.Binding != binding(user, f) {
		return nil, apierror.Invalid("page_token", "was issued for another user or another filter; pass the filter it was issued with, or start again without a page token")
	}
	return &Cursor{ReceivedTime: time.UnixMicro(t.Micros).UTC(), ID: t.ID}, nil
}
