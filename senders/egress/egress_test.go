package egress_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/senders/egress"
	"github.com/herald-dev/herald/senders/sendertest"
)

// The policy as a pure function: no address here is ever dialled.
func TestCheck(t *testing.T) {
	deny := []string{
		"169.254.169.254", "169.254.0.1", // metadata, link-local
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.1", // private
		"100.64.0.1", "100.127.255.254", // CGNAT / shared
		"127.0.0.1", "127.1.2.3", "::1", // loopback
		"0.0.0.0", "0.1.2.3", "::", // unspecified, this network
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1", // multicast
		"255.255.255.255", "240.0.0.1", // broadcast, reserved
		"fd00::1", "fc00::1", "fdff:ffff::1", // unique local
		"fe80::1", "fe80::1%eth0", // link-local v6, with a zone
		"::ffff:169.254.169.254", "::ffff:10.0.0.1", "::ffff:127.0.0.1", // IPv4-mapped
		"64:ff9b::a9fe:a9fe",                                                    // NAT64 of 169.254.169.254
		"192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1", "198.18.0.1", // documentation, benchmarking
	}
	allow := []string{"8.8.8.8", "1.1.1.1", "17.188.128.1", "142.250.0.1", "2607:f8b0::1", "::ffff:8.8.8.8", "100.128.0.1", "172.32.0.1", "11.0.0.1"}
	var p *egress.Policy // nil: the default
	for _, s := range deny {
		if err := p.Check(netip.MustParseAddr(s)); err == nil {
			t.Errorf("%s allowed by default, want denied", s)
		} else if strings.Contains(err.Error(), strings.Split(s, "%")[0]) {
			t.Errorf("%s: error %q names the address", s, err)
		}
	}
	for _, s := range allow {
		if err := p.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s denied (%v), want allowed", s, err)
		}
	}
	// An operator opens a range; the rest stays shut.
	op, err := egress.Parse("10.0.5.0/24, 169.254.169.254/32")
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"10.0.5.7": true, "10.0.6.1": false, "169.254.169.254": true, "::ffff:10.0.5.9": true, "127.0.0.1": false, "8.8.8.8": true} {
		if got := op.Check(netip.MustParseAddr(s)) == nil; got != want {
			t.Errorf("with 10.0.5.0/24: %s allowed %v, want %v", s, got, want)
		}
	}
	if _, err := egress.Parse("10.0.0.0/33"); err == nil {
		t.Error("Parse accepted a bad CIDR")
	}
	if p, err := egress.Parse(""); err != nil || len(p.Allow) != 0 {
		t.Errorf("Parse(\"\") = %v, %v", p, err)
	}
}

// End to end at dial time, against loopback listeners only: 127.0.0.1,
// [::1], 0.0.0.0 (which reaches them) and a name that resolves to
// 127.0.0.1 are refused before any connection; the listener sees none.
// Loopback() lets them through.
func TestDialContext(t *testing.T) {
	ln := sendertest.Listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	deny := (*egress.Policy)(nil).DialContext(time.Second)
	for _, host := range ln.Hosts {
		addr := net.JoinHostPort(host, ln.Port)
		c, err := deny(ctx, "tcp", addr)
		var e *egress.Error
		if err == nil {
			_ = c.Close()
			t.Errorf("%s: connected, want refused", addr)
			continue
		}
		if !errors.As(err, &e) || e.Host != host || !strings.Contains(err.Error(), host) {
			t.Errorf("%s: error %v, want an egress Error naming %s", addr, err, host)
		}
	}
	if n := ln.Accepted(); n != 0 {
		t.Fatalf("the listener saw %d connections from refused dials", n)
	}
	c, err := egress.Loopback().DialContext(time.Second)(ctx, "tcp", net.JoinHostPort("127.0.0.1", ln.Port))
	if err != nil {
		t.Fatalf("Loopback policy: %v", err)
	}
	_ = c.Close()
}
