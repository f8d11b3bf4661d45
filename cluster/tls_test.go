package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
)

// testCA makes a CA and one node certificate signed by it, as PEM files.
func testCA(t *testing.T, dir string) TLSFiles {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vitrine test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "vitrine node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return TLSFiles{Cert: write("node.pem", "CERTIFICATE", der), Key: write("node.key", "PRIVATE KEY", keyDER), CA: write("ca.pem", "CERTIFICATE", caDER)}
}

// TestMutualTLS: nodes whose certificates the same CA signed reach each
// other's grains; a node with another CA's certificate does not.
func TestMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts cluster nodes (seconds)")
	}
	good, other := testCA(t, t.TempDir()), testCA(t, t.TempDir())
	pa, pb, pc := freePort(t), freePort(t), freePort(t)
	peers := []string{"127.0.0.1:" + strconv.Itoa(pa), "127.0.0.1:" + strconv.Itoa(pb), "127.0.0.1:" + strconv.Itoa(pc)}
	kind := pcluster.NewKind("echo", actor.PropsFromProducer(func() actor.Actor { return &echoGrain{node: "a"} }))
	a, err := Start(Config{Name: "tls", Peers: peers, ManageAddr: peers[0], TLS: &good}, zap.NewNop(), kind)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := Start(Config{Name: "tls", Peers: peers, ManageAddr: peers[1], TLS: &good}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	intruder, err := Start(Config{Name: "tls", Peers: peers, ManageAddr: peers[2], TLS: &other}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer intruder.Stop()

	call := func(n *Node) error {
		_, err := n.Request(t.Context(), "p-1", "echo", &actorspb.ProductCommand{}, 2*time.Second)
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for err := call(b); err != nil; err = call(b) {
		if time.Now().After(deadline) {
			t.Fatalf("node b never reached the grain on node a over TLS: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := call(intruder); err == nil {
		t.Fatal("a node with a certificate of another CA reached a grain")
	}

	// That the intruder fails because of TLS, and not by chance: the same
	// handshake against node a's actor endpoint, made as a node makes it
	// (gRPC's ALPN), is accepted with the cluster's certificate and refused
	// by a TLS alert with any other, or none.
	addr := a.Address()
	if err := handshake(addr, good, nil); err != nil {
		t.Fatalf("a node's own certificate: %v, want the handshake accepted", err)
	}
	trustAny := func(c *tls.Config) { c.VerifyConnection = nil } // the server is not what is tested here
	if err := handshake(addr, other, trustAny); err == nil || !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
		t.Errorf("another CA's certificate: %v, want node a to refuse it with a bad-certificate alert", err)
	}
	noCert := func(c *tls.Config) { c.VerifyConnection, c.Certificates = nil, nil }
	if err := handshake(addr, good, noCert); err == nil || !strings.Contains(err.Error(), "remote error: tls: certificate required") {
		t.Errorf("no certificate: %v, want node a to refuse with a certificate-required alert", err)
	}
	// And the other way round: the intruder refuses node a's certificate.
	if err := handshake(addr, other, nil); err == nil || !strings.Contains(err.Error(), "not signed by the cluster CA") {
		t.Errorf("the intruder's view of node a: %v, want node a's certificate refused", err)
	}
}

// handshake dials a node's actor endpoint with the client configuration a
// node built from files would use (changed by edit, when given), completes
// the TLS handshake and reads: TLS 1.3 reports a refused client
// certificate on the first read. nil: accepted (the node's gRPC server
// sends its first frame, or nothing yet).
func handshake(addr string, files TLSFiles, edit func(*tls.Config)) error {
	_, client, err := files.Load()
	if err != nil {
		return err
	}
	client.NextProtos = []string{"h2"}
	if edit != nil {
		edit(client)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, client)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}
