package imapsync

import (
	"net/netip"

	"mailroom.dev/platform/netguard"
)

// Guard dials IMAP servers through the SSRF guard that webhooks share (see
// package netguard).
type Guard = netguard.Guard

// RefusedError is a host ingest will not connect to.
type RefusedError = netguard.RefusedError

// NewGuard returns a Guard allowing the entries of allow
// (MAILROOM_IMAP_ALLOW_HOSTS): host names, IP addresses or CIDR prefixes.
func NewGuard(allow []string) (*Guard, error) {
	return netguard.New("MAILROOM_IMAP_ALLOW_HOSTS", allow)
}

// Check returns why ip may not be dialed, or "" when it may.
func Check(ip netip.Addr) string { return netguard.Check(ip) }
