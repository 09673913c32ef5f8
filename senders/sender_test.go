package senders_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/herald-dev/herald/senders"
)

// untrustedServerError is what a client gets from a TLS server whose CA it
// does not trust: a *url.Error around a *tls.CertificateVerificationError.
func untrustedServerError(t *testing.T) error {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	res, err := (&http.Client{}).Get(srv.URL + "/secret-path")
	if err == nil {
		_ = res.Body.Close()
		t.Fatal("a client without the test CA trusted the server")
	}
	return err
}

func TestAsError(t *testing.T) {
	given := senders.Permanent(senders.ReasonPayloadRejected, "x", "given")
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		reason    string
		code      string
	}{
		{"typed error as is", fmt.Errorf("wrapped: %w", given), true, senders.ReasonPayloadRejected, "x"},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), false, senders.ReasonTimeout, ""},
		{"untrusted certificate", untrustedServerError(t), true, senders.ReasonAuthFailed, "TLS"},
		{"unknown authority", fmt.Errorf("dial: %w", x509.UnknownAuthorityError{}), true, senders.ReasonAuthFailed, "TLS"},
		{"anything else", errors.New("connection reset by peer"), false, senders.ReasonNetwork, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := senders.AsError(tc.err)
			if e.Permanent != tc.permanent || e.Reason != tc.reason || e.Code != tc.code {
				t.Fatalf("AsError(%v) = %v, want permanent=%t reason=%s code=%q", tc.err, e, tc.permanent, tc.reason, tc.code)
			}
		})
	}
	if senders.AsError(nil) != nil {
		t.Error("AsError(nil) is not nil")
	}
}

func TestAsErrorKeepsURLOutOfTLSMessage(t *testing.T) {
	e := senders.AsError(untrustedServerError(t))
	if strings.Contains(e.Message, "secret-path") || !strings.HasPrefix(e.Message, "server certificate not trusted: ") {
		t.Fatalf("message %q", e.Message)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	if e := senders.UntrustedCertificate(errors.New("tls: handshake failure")); e != nil {
		t.Fatalf("a handshake failure is not a certificate we distrust: %v", e)
	}
	if e := senders.UntrustedCertificate(untrustedServerError(t)); e == nil || e.Code != "TLS" {
		t.Fatalf("got %v", e)
	}
}
