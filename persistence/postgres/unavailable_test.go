package postgres_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/postgres"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// closedPort returns a URL naming a port of 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return "postgres://vitrine:s3cret@127.0.0.1:" + strconv.Itoa(port) + "/vitrine?sslmode=disable"
}

// silentServer returns a URL naming a server that accepts connections and
// never says a word, as a hung or black-holed one would.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return "postgres://vitrine:s3cret@" + ln.Addr().String() + "/vitrine?sslmode=disable"
}

// TestOpenUnavailableFast needs no server: it checks that a server that is
// down or does not answer makes Open fail fast with Unavailable, and that
// the error does not show the password.
func TestOpenUnavailableFast(t *testing.T) {
	tests := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"connection refused", closedPort},
		{"no answer", silentServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = 500 * time.Millisecond
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // far beyond the connect timeout
			defer cancel()
			start := time.Now()
			db, err := postgres.Open(ctx, tt.url(t), postgres.Options{ConnectTimeout: timeout})
			elapsed := time.Since(start)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if catalog.ErrorKind(err) != catalog.KindUnavailable {
				t.Errorf("Open error = %v, want unavailable", err)
			}
			if elapsed > 4*timeout {
				t.Errorf("Open took %v to fail, connect timeout %v", elapsed, timeout)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestOpenBadURL(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://vitrine:s3cret@127.0.0.1:notaport/x", postgres.Options{})
	if err == nil {
		t.Fatal("Open succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
}
