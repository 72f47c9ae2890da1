package imapsync_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"mailroom.dev/services/ingest/internal/imapsync"
)

func TestCheck(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1":          "loopback",
		"127.8.9.10":         "loopback",
		"::1":                "loopback",
		"169.254.169.254":    "link-local",
		"fe80::1":            "link-local",
		"10.0.0.1":           "private",
		"172.16.5.4":         "private",
		"192.168.1.1":        "private",
		"fd00::1":            "private",
		"0.0.0.0":            "unspecified",
		"::":                 "unspecified",
		"::ffff:127.0.0.1":   "loopback",
		"::ffff:169.254.1.1": "link-local",
		"100.64.0.1":         "shared (carrier-grade NAT)",
		"224.0.0.1":          "link-local", // 224.0.0.0/24 is link-local multicast
		"239.1.2.3":          "multicast",
		"255.255.255.255":    "broadcast",
		"64:ff9b::a00:1":     "NAT64",
		"93.184.215.14":      "",
		"2606:4700::1111":    "",
		"8.8.8.8":            "",
	} {
		if got := imapsync.Check(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Check(%s) = %q, want %q", addr, got, want)
		}
	}
}

// resolver answers from a map, as a DNS server an attacker controls might.
type resolver map[string][]netip.Addr

func (r resolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestResolve(t *testing.T) {
	g, err := imapsync.NewGuard([]string{"mail.internal", "10.9.0.0/16", "192.168.7.7"})
	if err != nil {
		t.Fatal(err)
	}
	g.Resolver = resolver{
		"imap.example.com": {netip.MustParseAddr("93.184.215.14")},
		"rebind.example":   {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("169.254.169.254")},
		"mail.internal":    {netip.MustParseAddr("10.1.1.1")},
		"cidr.example":     {netip.MustParseAddr("10.9.3.4")},
		"mapped.example":   {netip.MustParseAddr("::ffff:10.0.0.8")},
	}
	ctx := context.Background()
	for host, wantOK := range map[string]bool{
		"imap.example.com": true,
		"rebind.example":   false, // one bad address refuses the host
		"mail.internal":    true,  // allow-listed by name
		"cidr.example":     true,  // allow-listed by prefix
		"mapped.example":   false,
		"192.168.7.7":      true, // allow-listed address
		"192.168.7.8":      false,
		"10.9.0.1":         true,
	} {
		addrs, err := g.Resolve(ctx, host)
		var re *imapsync.RefusedError
		switch {
		case wantOK && err != nil:
			t.Errorf("Resolve(%s): %v", host, err)
		case !wantOK && !errors.As(err, &re):
			t.Errorf("Resolve(%s) = %v, %v; want a RefusedError", host, addrs, err)
		}
	}
	if _, err := g.Dial(ctx, "127.0.0.1", 1); err == nil || !errors.As(err, new(*imapsync.RefusedError)) {
		t.Errorf("Dial loopback: %v, want refused before any connection", err)
	}
	if _, err := imapsync.NewGuard([]string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
