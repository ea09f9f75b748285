package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Pair is a certificate and its key, as PEM bytes and as files.
type Pair struct {
	Cert, Key         []byte
	CertFile, KeyFile string
}

// PKI is a set of certificates for the TLS tests, valid for a day.
type PKI struct {
	// CA signs Server and Client.
	CA Pair
	// Server is for 127.0.0.1 and localhost.
	Server Pair
	// Client is a client certificate the server trusts (signed by CA).
	Client Pair
	// Stranger is a client certificate signed by a CA the server does not trust.
	Stranger Pair
}

// NewPKI makes fresh P-256 certificates in the test's temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	issue := func(name string, template *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (Pair, *x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			t.Fatal(err)
		}
		template.SerialNumber = serial
		template.Subject = pkix.Name{CommonName: name}
		template.NotBefore = time.Now().Add(-time.Hour)
		template.NotAfter = time.Now().Add(24 * time.Hour)
		if parent == nil {
			parent, parentKey = template, key
		}
		der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		pair := Pair{
			Cert:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			Key:      pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
			CertFile: filepath.Join(dir, name+".crt"),
			KeyFile:  filepath.Join(dir, name+".key"),
		}
		if err := os.WriteFile(pair.CertFile, pair.Cert, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pair.KeyFile, pair.Key, 0o600); err != nil {
			t.Fatal(err)
		}
		return pair, cert, key
	}
	authority := func() *x509.Certificate {
		return &x509.Certificate{IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	leaf := func(usage x509.ExtKeyUsage) *x509.Certificate {
		return &x509.Certificate{KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	}

	var pki PKI
	var ca, otherCA *x509.Certificate
	var caKey, otherKey *ecdsa.PrivateKey
	pki.CA, ca, caKey = issue("test-ca", authority(), nil, nil)
	server := leaf(x509.ExtKeyUsageServerAuth)
	server.DNSNames = []string{"localhost"}
	server.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	pki.Server, _, _ = issue("server", server, ca, caKey)
	pki.Client, _, _ = issue("client", leaf(x509.ExtKeyUsageClientAuth), ca, caKey)
	_, otherCA, otherKey = issue("other-ca", authority(), nil, nil)
	pki.Stranger, _, _ = issue("stranger", leaf(x509.ExtKeyUsageClientAuth), otherCA, otherKey)
	return &pki
}
