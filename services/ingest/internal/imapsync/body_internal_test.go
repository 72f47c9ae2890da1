package imapsync

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestBodiesAreReadThroughALimit: a server that declared small messages
// (RFC822.SIZE) and then sends a huge literal costs at most the limit in
// memory; the message is reported too large with the size the server sent,
// and its neighbour in the batch still arrives.
func TestBodiesAreReadThroughALimit(t *testing.T) {
	const limit = 1000
	huge := strings.Repeat("x", 200_000)
	small := "Subject: hi\r\n\r\nhello\r\n"
	cli, srv := net.Pipe()
	defer cli.Close()
	go func() {
		defer srv.Close()
		w := bufio.NewWriter(srv)
		r := bufio.NewReader(srv)
		fmt.Fprintf(w, "* OK IMAP4rev1 ready\r\n")
		w.Flush()
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag := strings.Fields(line)[0]
		fmt.Fprintf(w, "* 1 FETCH (UID 7 BODY[] {%d}\r\n%s)\r\n", len(huge), huge)
		fmt.Fprintf(w, "* 2 FETCH (UID 8 BODY[] {%d}\r\n%s)\r\n", len(small), small)
		fmt.Fprintf(w, "%s OK UID FETCH completed\r\n", tag)
		w.Flush()
		_, _ = r.ReadString('\n') // whatever comes next (LOGOUT)
	}()
	c := &conn{c: imapclient.New(cli, nil), raw: cli, stop: func() bool { return true }, to: 10 * time.Second}
	defer c.c.Close()
	m := &IMAP{cfg: Config{MaxMessageBytes: limit}}
	got, err := m.readBodies(c, []imap.UID{7, 8}, &imap.FetchItemBodySection{Peek: true}, map[imap.UID]string{7: "a", 8: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if b := got[7]; !b.tooLarge || b.raw != nil || b.size != int64(len(huge)) {
		t.Errorf("the huge body: too large %v, kept %d bytes, size %d; want refused, nothing kept, its real size", b.tooLarge, len(b.raw), b.size)
	}
	if b := got[8]; b.tooLarge || string(b.raw) != small {
		t.Errorf("the small body = %q (too large %v), want it whole", b.raw, b.tooLarge)
	}
}
