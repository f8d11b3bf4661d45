package urlfetch

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

func TestAllowed(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"169.254.169.254", false}, // cloud metadata
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"100.64.0.1", false},
		{"127.0.0.1", false},
		{"0.0.0.0", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"::1", false},
		{"::", false},
		{"fc00::1", false},
		{"fd00:ec2::254", false}, // AWS metadata over IPv6
		{"fe80::1", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false}, // IPv4-mapped loopback
		{"::127.0.0.1", false},      // IPv4-compatible loopback (::7f00:1)
		{"::10.0.0.1", false},       // IPv4-compatible private
		{"::8.8.8.8", false},        // IPv4-compatible: deprecated, never a real destination
		{"::ffff:8.8.8.8", true},    // IPv4-mapped public: judged as 8.8.8.8
		{"::ffff:10.1.2.3", false},
		{"64:ff9b::a00:1", false}, // NAT64 of 10.0.0.1
		{"2002:a00:1::", false},   // 6to4 of 10.0.0.1
		{"93.184.216.34", true},
		{"8.8.8.8", true},
		{"2606:4700:4700::1111", true},
	}
	for _, tt := range tests {
		err := Allowed(netip.MustParseAddr(tt.addr), nil)
		if (err == nil) != tt.ok {
			t.Errorf("Allowed(%s) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
	allow, err := ParseAllow([]string{"127.0.0.1", "10.1.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, ok := range map[string]bool{"127.0.0.1": true, "127.0.0.2": false, "10.1.2.3": true, "10.2.0.1": false} {
		if err := Allowed(netip.MustParseAddr(addr), allow); (err == nil) != ok {
			t.Errorf("with allowlist: Allowed(%s) = %v, want ok=%v", addr, err, ok)
		}
	}
	if _, err := ParseAllow([]string{"not-an-ip"}); err == nil {
		t.Error("ParseAllow accepted garbage")
	}
}

// stubResolver answers from a table and never touches DNS.
type stubResolver map[string][]string

func (s stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range s[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

// loopbackOnly is a dialer that fails the test if any connection to a
// non-loopback address is attempted.
func loopbackOnly(t *testing.T, dials *atomic.Int32) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
			t.Errorf("a connection to %s was attempted", addr)
			return nil, errors.New("test: non-loopback connection refused")
		}
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func TestNamesResolvingToBlockedAddressesAreRefusedBeforeConnecting(t *testing.T) {
	var dials atomic.Int32
	resolver := stubResolver{
		"metadata.example":  {"169.254.169.254"},
		"intranet.example":  {"10.0.0.1"},
		"router.example":    {"192.168.1.1"},
		"cgnat.example":     {"100.64.0.1"},
		"v6local.example":   {"::1"},
		"ula.example":       {"fc00::1"},
		"linklocal.example": {"fe80::1"},
		"loopback.example":  {"127.0.0.1"},
		"mixed.example":     {"10.0.0.1", "127.0.0.1"},
		// One public address is not enough: every address must be.
		"public-first.example":   {"93.184.216.34", "10.0.0.1"},
		"private-first.example":  {"169.254.169.254", "93.184.216.34"},
		"public-and-v6.example":  {"93.184.216.34", "::1"},
		"mapped-private.example": {"::ffff:192.168.0.1"},
		"compat-private.example": {"::10.0.0.1"},
	}
	f := New(Config{Resolver: resolver, Dial: loopbackOnly(t, &dials)})
	for host := range resolver {
		_, err := f.Fetch(context.Background(), "http://"+host+"/a.jpg")
		var ce *catalog.Error
		if !errors.As(err, &ce) || ce.Code != catalog.FailFetch || ce.Kind != catalog.KindUnprocessableImage {
			t.Errorf("%s: err = %v, want a permanent fetch_failed", host, err)
		}
	}
	for _, raw := range []string{"http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://127.0.0.1:1/x", "http://[fe80::1%25eth0]/"} {
		if _, err := f.Fetch(context.Background(), raw); err == nil {
			t.Errorf("%s was fetched", raw)
		}
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connections were made", n)
	}
}

// rebinding answers a public address the first time a host is looked up
// and a private one after, as a rebinding DNS server does.
type rebinding struct{ calls atomic.Int32 }

func (r *rebinding) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("10.0.0.1")}, nil
}

// TestRebindingIsRefusedBeforeConnecting: an import row's URL passes the
// check (the name resolved to a public address then); when the worker
// fetches it, the name resolves to a private address: the connection
// judges its own lookup and is never made.
func TestRebindingIsRefusedBeforeConnecting(t *testing.T) {
	var dials atomic.Int32
	r := &rebinding{}
	f := New(Config{Resolver: r, Dial: loopbackOnly(t, &dials)})
	if err := f.CheckTarget(context.Background(), "http://rebind.example/a.jpg"); err != nil {
		t.Fatalf("the first answer is public: %v", err)
	}
	if _, err := f.Fetch(context.Background(), "http://rebind.example/a.jpg"); err == nil {
		t.Error("a host that rebinds to a private address was fetched")
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connections were made", n)
	}
}

// TestNumericHostFormsAreRefused: the forms of an IPv4 address that C
// resolvers accept (decimal, hex, octal, short) reach the guard as names;
// through the system's resolver they must still be refused, with no
// connection made.
func TestNumericHostFormsAreRefused(t *testing.T) {
	var dials atomic.Int32
	f := New(Config{Dial: loopbackOnly(t, &dials)}) // the default resolver, as in production
	for _, raw := range []string{
		"http://2130706433/a.jpg",      // 127.0.0.1 as one decimal number
		"http://0x7f000001/a.jpg",      // in hex
		"http://0177.0.0.1/a.jpg",      // octal first byte
		"http://127.1/a.jpg",           // short form
		"http://0x7f.0.0.1/a.jpg",      // hex first byte
		"http://017700000001/a.jpg",    // one octal number
		"http://3232235521/a.jpg",      // 192.168.0.1
		"http://[::ffff:7f00:1]/a.jpg", // IPv4-mapped loopback, hex
		"http://[0:0:0:0:0:ffff:127.0.0.1]/a.jpg",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := f.Fetch(ctx, raw)
		cancel()
		if err == nil {
			t.Errorf("%s was fetched", raw)
		}
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d connections were made", n)
	}
}

func TestFetchLoopback(t *testing.T) {
	var hitsB atomic.Int32
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsB.Add(1)
		w.Write([]byte("secret"))
	}))
	defer b.Close()

	// Server A listens on 127.0.0.2 (allowlisted) and redirects to B on
	// 127.0.0.1 (not allowlisted).
	lnA, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("cannot listen on 127.0.0.2 (Linux routes all of 127.0.0.0/8 to lo): %v", err)
	}
	hops := 0
	a := &httptest.Server{Listener: lnA, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/image":
			w.Write([]byte("image bytes"))
		case "/to-b":
			http.Redirect(w, r, b.URL+"/", http.StatusFound)
		case "/loop":
			hops++
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/big":
			w.Write(make([]byte, 2048))
		case "/gone":
			http.NotFound(w, r)
		}
	})}}
	a.Start()
	defer a.Close()

	var dials atomic.Int32
	allowA, _ := ParseAllow([]string{"127.0.0.2"})
	f := New(Config{Allow: allowA, MaxBytes: 1024, Dial: loopbackOnly(t, &dials)})

	data, err := f.Fetch(context.Background(), a.URL+"/image")
	if err != nil || string(data) != "image bytes" {
		t.Fatalf("fetch from an allowlisted server: %q, %v", data, err)
	}
	if _, err := f.Fetch(context.Background(), b.URL+"/"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("direct fetch from a loopback server not allowlisted: %v", err)
	}
	if _, err := f.Fetch(context.Background(), a.URL+"/to-b"); err == nil {
		t.Error("a redirect to a loopback server not allowlisted was followed")
	}
	if n := hitsB.Load(); n != 0 {
		t.Errorf("the refused server was reached %d times", n)
	}
	if _, err := f.Fetch(context.Background(), a.URL+"/loop"); err == nil || hops > 4 {
		t.Errorf("redirect loop: err %v after %d hops", err, hops)
	}
	if _, err := f.Fetch(context.Background(), a.URL+"/big"); err == nil {
		t.Error("a body over MaxBytes was accepted")
	}
	_, err = f.Fetch(context.Background(), a.URL+"/gone")
	if catalog.ErrorKind(err) != catalog.KindUnprocessableImage {
		t.Errorf("404: %v, want a permanent failure", err)
	}
	for _, raw := range []string{"ftp://x/y", "file:///etc/passwd", "http://user:pw@example.com/", "not a url", "http:///nohost"} {
		if CheckURL(raw) == nil {
			t.Errorf("CheckURL(%q) accepted", raw)
		}
	}
}

// TestURLPatternIsCheckURL: the pattern the OpenAPI document publishes and
// CheckURL agree: what the pattern matches is accepted, what it does not
// is refused. Bracketed hosts are compared with netip over random strings
// of their alphabet, which is where a hand-written IPv6 grammar goes wrong.
func TestURLPatternIsCheckURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"https://example.com/photo.jpg", true},
		{"http://cdn.example.com:8080/a/b.jpg?w=1&x=%20#f", true},
		{"http://[::1]:8080/photo.jpg", true},
		{"http://[fe80::1]/", true},
		{"http://[::ffff:192.0.2.1]/", true},
		{"http://[1:2:3:4:5:6:7:8]", true},
		{"http://[1:2:3:4:5:6:7::]", true},
		{"http://[::]/", true},
		{"http://[:]/", false},
		{"http://[1:2:3:4:5:6:7:8:9]/", false},
		{"http://[::01.2.3.4]/", false},
		{"http://[fe80::1%25eth0]/", false},
		{"http://[::1/", false},
		{"http://", false},
		{"http:///nohost", false},
		{"http://user:pw@example.com/", false},
		{"http://example.com/a b", false},
		{"http://example.com/%zz", false},
		{"http://example.com:123456/", false},
		{"ftp://example.com/", false},
	} {
		if got := URLPattern.MatchString(tc.raw); got != tc.want {
			t.Errorf("URLPattern.MatchString(%q) = %v, want %v", tc.raw, got, tc.want)
		}
		if got := CheckURL(tc.raw) == nil; got != tc.want {
			t.Errorf("CheckURL(%q) accepted = %v, want %v", tc.raw, got, tc.want)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789abcdefABCDEF:."
	matched := 0
	for range 200_000 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		// Bias towards addresses: a "::" somewhere, most of the time.
		if i := rng.IntN(len(b)); len(b) > 2 && rng.IntN(3) > 0 {
			b[i], b[(i+1)%len(b)] = ':', ':'
		}
		host := string(b)
		_, perr := netip.ParseAddr(host)
		valid := perr == nil && strings.Contains(host, ":") // an IPv6 address; an IPv4 one goes without brackets
		raw := "http://[" + host + "]/x"
		got := URLPattern.MatchString(raw)
		if got {
			matched++
		}
		if got != valid {
			t.Fatalf("host [%s]: pattern matches %v, netip says valid IPv6 %v (%v)", host, got, valid, perr)
		}
		if got && CheckURL(raw) != nil {
			t.Fatalf("%s matches the pattern but CheckURL refuses it: %v", raw, CheckURL(raw))
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d random hosts were valid addresses: the test does not reach the grammar", matched)
	}
}

// TestCheckTarget: an import's image URL is refused before any write when
// its host is, or resolves to, an address the guard blocks — any of them.
func TestCheckTarget(t *testing.T) {
	resolver := stubResolver{
		"public.example": {"93.184.216.34"},
		"mixed.example":  {"93.184.216.34", "10.0.0.1"},
	}
	f := New(Config{Resolver: resolver})
	for raw, ok := range map[string]bool{
		"https://public.example/a.jpg":     true,
		"https://mixed.example/a.jpg":      false,
		"http://[::127.0.0.1]/a.jpg":       false,
		"http://[::ffff:7f00:1]/a.jpg":     false,
		"http://127.0.0.1/a.jpg":           false,
		"http://unknown.example/a.jpg":     false, // does not resolve
		"ftp://public.example/a.jpg":       false,
		"https://user:pw@public.example/a": false,
	} {
		if err := f.CheckTarget(context.Background(), raw); (err == nil) != ok {
			t.Errorf("CheckTarget(%s) = %v, want ok=%v", raw, err, ok)
		}
	}
}
