// Package egress decides where the manager may connect. Every sender dials
// through a Policy, so a tenant who controls a provider's endpoint, webhook
// URL, SMTP host or a credentials file's token URI cannot make the manager
// reach the cloud's metadata service, the API server, or any other address
// inside the cluster, and read the answer back.
//
// The check runs at dial time, on the address actually dialled (a net.Dialer
// Control hook), after name resolution: a name that resolves to a public
// address when it is validated and to a private one when it is used (DNS
// rebinding) is still refused. Refusal is permanent, with reason
// EgressDenied, and names the host the sender asked for, never the
// addresses it resolved to.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ReasonEgressDenied is the delivery reason of a refused connection.
const ReasonEgressDenied = "EgressDenied"

// denied are the ranges no provider needs and an attacker wants: this host,
// this network, private and shared address space, link-local (the metadata
// services), multicast, and the reserved blocks. IPv4-mapped IPv6 addresses
// are checked as the IPv4 address they carry.
var denied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // this network; 0.0.0.0 reaches local services
	netip.MustParsePrefix("10.0.0.0/8"),      // private
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT), often cluster-internal
	netip.MustParsePrefix("127.0.0.0/8"),     // loopback
	netip.MustParsePrefix("169.254.0.0/16"),  // link-local: 169.254.169.254 metadata
	netip.MustParsePrefix("172.16.0.0/12"),   // private
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.168.0.0/16"),  // private
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("224.0.0.0/4"),     // multicast
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("::/128"),          // unspecified
	netip.MustParsePrefix("::1/128"),         // loopback
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fc00::/7"),        // unique local
	netip.MustParsePrefix("fe80::/10"),       // link-local
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
	netip.MustParsePrefix("ff00::/8"),        // multicast
}

// Policy says which addresses may be dialled: any public address, and the
// denied ranges only where Allow covers them. The zero Policy denies every
// range above.
type Policy struct {
	// Allow lists ranges an operator opened (--egress-allow-cidrs): an
	// in-cluster SMTP relay, a proxy, loopback for development and tests.
	Allow []netip.Prefix
}

// Parse builds a Policy from comma-separated CIDRs ("" allows nothing extra).
func Parse(cidrs string) (*Policy, error) {
	p := &Policy{}
	for _, s := range strings.Split(cidrs, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("egress: %q is not a CIDR: %w", s, err)
		}
		p.Allow = append(p.Allow, pr.Masked())
	}
	return p, nil
}

// Loopback allows this machine only: for tests and `make dev`, whose
// provider fakes listen on 127.0.0.1.
func Loopback() *Policy {
	return &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
}

// Check reports whether ip may be dialled: nil, or an error saying which
// kind of range refused it (not the address).
func (p *Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return errors.New("not an IP address")
	}
	if p != nil {
		for _, a := range p.Allow {
			if a.Contains(ip) {
				return nil
			}
		}
	}
	for _, d := range denied {
		if d.Contains(ip) {
			return fmt.Errorf("a %s address", kind(ip))
		}
	}
	return nil
}

func kind(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified() || ip.Is4() && ip.As4()[0] == 0:
		return "unspecified"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return "multicast"
	case ip.IsPrivate():
		return "private"
	}
	return "reserved or internal"
}

// Error is a refused connection. Senders classify it as permanent with
// reason EgressDenied.
type Error struct {
	// Host is the name or address the sender asked for.
	Host string
	// Why says which kind of range refused it, never the address.
	Why string
}

func (e *Error) Error() string {
	return fmt.Sprintf("connecting to %s %s %s (the operator can allow ranges with --egress-allow-cidrs)", e.Host, marker, e.Why)
}

// marker is in every Error's text, so Denied recognises one that an SDK
// flattened into a string (oauth2 formats the token request's error %v).
const marker = "is not allowed by the egress policy: it resolves to"

// Denied returns the message of a refused connection in err's chain, or of
// one an SDK flattened into err's text; ok is false when there is none.
func Denied(err error) (msg string, ok bool) {
	if err == nil {
		return "", false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Error(), true
	}
	text := err.Error()
	i := strings.Index(text, marker)
	if i < 0 {
		return "", false
	}
	// Keep "connecting to HOST ..." and drop what the SDK put before it (a
	// URL, which for chat webhooks is a secret).
	if j := strings.LastIndex(text[:i], "connecting to "); j >= 0 {
		text = text[j:]
	}
	return text, true
}

// DialContext dials like a net.Dialer with timeout, refusing addresses the
// policy denies. Use it as http.Transport.DialContext and for any raw dial.
func (p *Policy) DialContext(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		// Control runs once per address tried, possibly two at once (IPv4
		// and IPv6): keep the first refusal.
		var mu sync.Mutex
		var why error
		d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second,
			Control: func(_, address string, _ syscall.RawConn) error {
				err := errors.New("an address that does not parse")
				if ap, perr := netip.ParseAddrPort(address); perr == nil {
					err = p.Check(ap.Addr())
				}
				if err != nil {
					mu.Lock()
					if why == nil {
						why = err
					}
					mu.Unlock()
				}
				return err
			}}
		c, err := d.DialContext(ctx, network, addr)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && why != nil {
			return nil, &Error{Host: host, Why: why.Error()}
		}
		return c, err
	}
}
