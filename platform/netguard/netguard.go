// Package netguard dials hosts that users choose (IMAP servers, webhook
// endpoints) without letting them reach the operator's own network: it is
// the guard against server-side request forgery that ingest's IMAP client
// and the store's webhook deliveries share.
package netguard

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Guard dials servers on behalf of users, who choose the host: it is an
// SSRF surface. It resolves the host, refuses loopback, link-local
// (169.254.0.0/16 with the cloud metadata address, fe80::/10), private,
// shared (100.64.0.0/10), unspecified, multicast and other special-purpose
// addresses (IPv4 and IPv6, IPv4-mapped included), unless the operator's
// allow-list names the host, and dials the very address it checked, so
// that a second DNS answer cannot swap it (no rebinding window).
type Guard struct {
	// Allow lists host names, IP addresses and CIDR prefixes that may be
	// dialed whatever their addresses (MAILROOM_IMAP_ALLOW_HOSTS,
	// MAILROOM_WEBHOOK_ALLOW_HOSTS).
	hosts    map[string]bool
	prefixes []netip.Prefix
	// Resolver resolves host names (default net.DefaultResolver).
	Resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
	// DialTimeout bounds one connection attempt (default 15s).
	DialTimeout time.Duration
	// Setting names the allow-list in refusals ("MAILROOM_IMAP_ALLOW_HOSTS").
	Setting string
}

// New returns a Guard allowing the entries of allow: host names, IP
// addresses or CIDR prefixes ("mail.internal", "127.0.0.1", "10.1.0.0/16");
// setting names the allow-list's variable in refusals.
func New(setting string, allow []string) (*Guard, error) {
	g := &Guard{hosts: map[string]bool{}, Resolver: net.DefaultResolver, DialTimeout: 15 * time.Second, Setting: setting}
	for _, a := range allow {
		a = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(a), "."))
		if a == "" {
			continue
		}
		if strings.Contains(a, "/") {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR prefix", setting, a)
			}
			g.prefixes = append(g.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(a); err == nil {
			a = ip.Unmap().String()
		}
		g.hosts[a] = true
	}
	return g, nil
}

// Allowed reports whether the operator allow-listed host (or all its
// addresses, for a prefix).
func (g *Guard) Allowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if g.hosts[ip.String()] {
			return true
		}
		for _, p := range g.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return false
	}
	return g.hosts[host]
}

// RefusedError is a host the guard will not connect to.
type RefusedError struct {
	Host string
	// Addr is the offending address; Why says what kind it is.
	Addr netip.Addr
	Why  string
	// Setting is the allow-list that could allow it.
	Setting string
}

func (e *RefusedError) Error() string {
	if e.Host == e.Addr.String() {
		return fmt.Sprintf("%s is a %s address, which mailroom does not connect to; an operator can allow it with %s", e.Host, e.Why, e.Setting)
	}
	return fmt.Sprintf("%s resolves to %s, a %s address, which mailroom does not connect to; an operator can allow it with %s", e.Host, e.Addr, e.Why, e.Setting)
}

// special are the special-purpose ranges refused besides what netip's
// predicates cover.
var special = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
}

// Check returns why ip may not be dialed, or "" when it may.
func Check(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, s := range special {
		if s.prefix.Contains(ip) {
			return s.why
		}
	}
	return ""
}

// Resolve returns the addresses of host that may be dialed. Every address
// must pass: a name that resolves to one public and one private address is
// refused.
func (g *Guard) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip.Unmap()}
	} else {
		rctx, cancel := context.WithTimeout(ctx, g.DialTimeout)
		defer cancel()
		found, err := g.Resolver.LookupNetIP(rctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		for _, a := range found {
			addrs = append(addrs, a.Unmap())
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no address", host)
		}
	}
	if g.Allowed(host) {
		return addrs, nil
	}
	for _, a := range addrs {
		if why := Check(a); why != "" && !g.Allowed(a.String()) {
			return nil, &RefusedError{Host: host, Addr: a, Why: why, Setting: g.Setting}
		}
	}
	return addrs, nil
}

// Dial resolves host, checks its addresses and connects to the first that
// answers, by address.
func (g *Guard) Dial(ctx context.Context, host string, port int) (net.Conn, error) {
	addrs, err := g.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: g.DialTimeout}
	var last error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}
