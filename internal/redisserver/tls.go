package redisserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// OpenSSL is the executable StartTLS makes certificates with.
const OpenSSL = "openssl"

// OpenSSLInstallHint says what to install when OpenSSL is missing.
const OpenSSLInstallHint = "apt-get install openssl"

// tlsFiles are a TLS server's PEM files.
type tlsFiles struct {
	ca, cert, key string
}

// StartTLS is Start for a server that speaks only TLS: its URL is
// rediss://127.0.0.1:PORT, its certificate (for 127.0.0.1 and localhost)
// is signed by a CA made with openssl in certDir, whose file is CAFile.
// Clients need no certificate of their own.
func StartTLS(ctx context.Context, certDir string, args ...string) (*Server, error) {
	tf, err := MakeCerts(ctx, certDir)
	if err != nil {
		return nil, err
	}
	return start(ctx, &tlsFiles{ca: tf[0], cert: tf[1], key: tf[2]}, args)
}

// MakeCerts makes with openssl, in dir, a CA (ca.crt) and a server
// certificate it signed for 127.0.0.1 and localhost (server.crt,
// server.key), valid two days, and returns the three paths.
func MakeCerts(ctx context.Context, dir string) ([3]string, error) {
	p := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(p("server.ext"), []byte("subjectAltName=IP:127.0.0.1,DNS:localhost\n"), 0o600); err != nil {
		return [3]string{}, fmt.Errorf("redisserver: %w", err)
	}
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	for _, args := range [][]string{
		append([]string{"req", "-x509", "-days", "2", "-subj", "/CN=resetq test CA", "-keyout", p("ca.key"), "-out", p("ca.crt")}, ec...),
		append([]string{"req", "-subj", "/CN=localhost", "-keyout", p("server.key"), "-out", p("server.csr")}, ec...),
		{"x509", "-req", "-days", "2", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
			"-CAcreateserial", "-extfile", p("server.ext"), "-out", p("server.crt")},
	} {
		if out, err := exec.CommandContext(ctx, OpenSSL, args...).CombinedOutput(); err != nil {
			return [3]string{}, fmt.Errorf("openssl %s: %w: %s", args[0], err, out)
		}
	}
	return [3]string{p("ca.crt"), p("server.crt"), p("server.key")}, nil
}

// dial connects to addr, over TLS checked against tf's CA if tf is not nil.
func dial(addr string, tf *tlsFiles) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Second}
	if tf == nil {
		return d.Dial("tcp", addr)
	}
	pem, err := os.ReadFile(tf.ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
}
