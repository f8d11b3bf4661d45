package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of mutual TLS between nodes: this node's
// certificate and key, and the CA that signed every node's certificate.
//
// Each node presents its certificate both as a server and as a client, and
// accepts a peer only when the peer's certificate chains to CA. Host names
// are not checked: nodes reach each other by addresses that change (pod
// IPs), so holding a certificate of the cluster's own CA is what makes a
// peer a member. Use a CA dedicated to the cluster.
type TLSFiles struct {
	Cert, Key, CA string
}

// Load reads the files and returns the server and client configurations.
func (f TLSFiles) Load() (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("cluster TLS CA %s: no PEM certificate in it", f.CA)
	}
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// Any key usage is accepted: the chain to the cluster's CA is what counts.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyChain(cs, pool)
		},
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The chain is verified below, against the cluster's CA only; the
		// host name is not (see TLSFiles).
		InsecureSkipVerify: true, // #nosec G402 -- VerifyConnection checks the chain against the cluster CA; host names are not checked (see TLSFiles)
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyChain(cs, pool)
		},
	}
	return server, client, nil
}

func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("cluster TLS: the peer presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("cluster TLS: peer certificate not signed by the cluster CA: %w", err)
	}
	return nil
}

// credentials turns the files into the remote's gRPC options.
func (f TLSFiles) credentials() ([]remote.ConfigOption, error) {
	server, client, err := f.Load()
	if err != nil {
		return nil, err
	}
	return []remote.ConfigOption{
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(server))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(client))),
	}, nil
}
