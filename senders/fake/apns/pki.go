package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
)

// NewKey generates a P-256 signing key, registers it for teamID and keyID as
// Apple would after you create it in the developer portal, and returns it in
// the .p8 form (PKCS#8 PEM) for a Secret's key.p8.
func (s *Server) NewKey(teamID, keyID string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s.AddKey(teamID, keyID, &key.PublicKey)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// AddKey registers the public half of a provider signing key.
func (s *Server) AddKey(teamID, keyID string, pub *ecdsa.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[keyID] = signingKey{teamID: teamID, pub: pub}
}

// NewClientCert issues a client certificate for certificate auth, signed by the
// fake's CA, for topic (the app's bundle id, in the certificate's UID and CN as
// Apple issues them). It returns PEM for a Secret's tls.crt and tls.key.
func (s *Server) NewClientCert(topic string) (certPEM, keyPEM []byte, err error) {
	return s.ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "Apple Push Services: " + topic, OrganizationalUnit: []string{topic}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// CAPEM is the CA that signed the fake's server certificate, for
// ProviderConfig.CA (spec.tls.caSecretRef).
func (s *Server) CAPEM() []byte { return s.ca.PEM }
