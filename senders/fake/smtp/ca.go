package smtp

import (
	"crypto/tls"
	"sync"

	"github.com/herald-dev/herald/senders/fake"
)

var (
	caOnce sync.Once
	caPEM  []byte
	caCert tls.Certificate
	caErr  error
)

// testCA returns the process's CA PEM and the server certificate it signed,
// made once: key generation is the slowest part of starting a fake.
func testCA() ([]byte, tls.Certificate, error) {
	caOnce.Do(func() {
		var ca *fake.CA
		if ca, caErr = fake.NewCA("Herald fake SMTP CA"); caErr != nil {
			return
		}
		caPEM = ca.PEM
		caCert, caErr = ca.ServerCert()
	})
	return caPEM, caCert, caErr
}
