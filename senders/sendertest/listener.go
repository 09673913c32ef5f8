package sendertest

import (
	"net"
	"sync/atomic"
	"testing"
)

// Listener is a loopback TCP listener that counts the connections it
// accepts and closes each at once: for tests of where senders may dial,
// where only whether a connection arrived matters.
type Listener struct {
	// Port is the same on 127.0.0.1 and, where the machine has it, [::1].
	Port string
	// Hosts name this machine every way a guard must refuse: 127.0.0.1,
	// 0.0.0.0 (which reaches local listeners), localhost, and ::1 when
	// available.
	Hosts    []string
	accepted atomic.Int32
}

// Listen starts a Listener, closed when t ends.
func Listen(t testing.TB) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	l := &Listener{Port: port, Hosts: []string{"127.0.0.1", "0.0.0.0", "localhost"}}
	lns := []net.Listener{ln}
	if ln6, err := net.Listen("tcp", "[::1]:"+port); err == nil {
		lns = append(lns, ln6)
		l.Hosts = append(l.Hosts, "::1")
	}
	for _, ln := range lns {
		t.Cleanup(func() { _ = ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				l.accepted.Add(1)
				_ = c.Close()
			}
		}()
	}
	return l
}

// Accepted is how many connections arrived so far.
func (l *Listener) Accepted() int { return int(l.accepted.Load()) }
