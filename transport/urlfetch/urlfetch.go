// Package urlfetch downloads images from client-given URLs without letting
// those URLs reach inside the network: every address is checked after
// resolution, at connect time, for the first request and every redirect, so
// neither DNS rebinding nor a redirect can reach a private, loopback,
// link-local, multicast or cloud-metadata address unless allowlisted.
package urlfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config bounds a fetch.
type Config struct {
	MaxBytes     int64         // default 25 MiB
	Timeout      time.Duration // whole fetch; default 15 s
	MaxRedirects int           // default 3
	// Allow admits addresses that the guard would otherwise refuse
	// (e.g. 127.0.0.1/32 for tests, or an internal image host).
	Allow    []netip.Prefix
	Resolver Resolver // default net.DefaultResolver
	// Dial makes the TCP connection to an already checked address; tests
	// replace it to prove no other connection is attempted.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Fetcher downloads URLs within Config's bounds.
type Fetcher struct {
	cfg    Config
	client *http.Client
}

// New returns a Fetcher.
func New(cfg Config) *Fetcher {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 25 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.MaxRedirects <= 0 {
		cfg.MaxRedirects = 3
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		cfg.Dial = d.DialContext
	}
	f := &Fetcher{cfg: cfg}
	transport := &http.Transport{
		DialContext:           f.dial,
		Proxy:                 nil, // a proxy would make the address check moot
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConns:          10,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	f.client = &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return fmt.Errorf("more than %d redirects", cfg.MaxRedirects)
			}
			return CheckURL(req.URL.String())
		},
	}
	return f
}

// URLPattern is the shape of an import URL (the OpenAPI document states the
// same pattern, kept equal by a test): http or https; a host name (letters,
// digits, dots, hyphens) or an IPv6 address in brackets, exactly as RFC
// 3986 writes one (no zone); an optional port; then an optional path,
// query or fragment of printable ASCII in which % starts an escape. Every
// URL it matches is one CheckURL accepts.
var URLPattern = regexp.MustCompile(urlPattern())

func urlPattern() string {
	const (
		h16 = `[0-9A-Fa-f]{1,4}`
		dec = `(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])` // no leading zeros
	)
	ls32 := `(` + h16 + `:` + h16 + `|` + dec + `(\.` + dec + `){3})`
	before := func(n int) string { // [ *n( h16 ":" ) h16 ]
		return `((` + h16 + `:){0,` + strconv.Itoa(n) + `}` + h16 + `)?`
	}
	ipv6 := strings.Join([]string{ // RFC 3986, section 3.2.2
		`(` + h16 + `:){6}` + ls32,
		`::(` + h16 + `:){5}` + ls32,
		`(` + h16 + `)?::(` + h16 + `:){4}` + ls32,
		before(1) + `::(` + h16 + `:){3}` + ls32,
		before(2) + `::(` + h16 + `:){2}` + ls32,
		before(3) + `::` + h16 + `:` + ls32,
		before(4) + `::` + ls32,
		before(5) + `::` + h16,
		before(6) + `::`,
	}, "|")
	host := `([A-Za-z0-9.-]+|\[(` + ipv6 + `)\])`
	return `^https?://` + host + `(:[0-9]{1,5})?([/?#]([!-$&-~]|%[0-9A-Fa-f]{2})*)?$`
}

// CheckURL refuses URLs that are not plain http(s) to a named host or an
// address literal; the address itself is checked at connect time.
func CheckURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("the URL is longer than 2048 characters")
	}
	if !URLPattern.MatchString(raw) {
		return errors.New("must be an http(s) URL of printable ASCII with a host name or address and no credentials, such as https://example.com/photo.jpg (escape other characters with %XX)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("the URL scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return errors.New("the URL has no host")
	}
	if u.User != nil {
		return errors.New("URLs with credentials are not accepted")
	}
	return nil
}

// CheckTarget refuses what Fetch would refuse before it connects: a URL
// CheckURL refuses, a host that does not resolve, or one with an address
// the guard blocks (any of them: an answer that mixes public and private
// addresses is refused whole). An import checks its rows' image URLs with
// it, so that a row naming a blocked host fails at once.
func (f *Fetcher) CheckTarget(ctx context.Context, raw string) error {
	if err := CheckURL(raw); err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = f.cfg.Resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return fmt.Errorf("the host %s does not resolve: %w", host, err)
	}
	for _, a := range addrs {
		if err := Allowed(a, f.cfg.Allow); err != nil {
			return fmt.Errorf("the host %s may not be fetched from: %w", host, err)
		}
	}
	return nil
}

// dial resolves the host, checks every address, and connects to the first
// allowed one by its address, so the checked address is the one used.
func (f *Fetcher) dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = f.cfg.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	if len(addrs) == 0 {
		return nil, &blockedError{host: host, err: fmt.Errorf("%s has no address", host)}
	}
	// An answer that mixes public and blocked addresses is refused whole,
	// as CheckTarget refuses it: a name pointing inside is not a public
	// image host, whichever address a connection would try first.
	for _, a := range addrs {
		if err := Allowed(a, f.cfg.Allow); err != nil {
			return nil, &blockedError{host: host, err: err}
		}
	}
	return f.cfg.Dial(ctx, network, net.JoinHostPort(addrs[0].Unmap().String(), port))
}

type blockedError struct {
	host string
	err  error
}

func (e *blockedError) Error() string { return fmt.Sprintf("%s: %v", e.host, e.err) }

// Fetch downloads raw within the limits. Its errors are *catalog.Error
// values with code fetch_failed; those of kind Unavailable may succeed if
// tried again.
func (f *Fetcher) Fetch(ctx context.Context, raw string) ([]byte, error) {
	if err := CheckURL(raw); err != nil {
		return nil, fetchFailed(false, "%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, http.NoBody)
	if err != nil {
		return nil, fetchFailed(false, "bad request: %v", err)
	}
	req.Header.Set("User-Agent", "vitrine-image-import/1")
	req.Header.Set("Accept", "image/*")
	res, err := f.client.Do(req)
	if err != nil {
		var blocked *blockedError
		if errors.As(err, &blocked) {
			return nil, fetchFailed(false, "refused to connect to %v (not a public address)", blocked)
		}
		if ctx.Err() != nil {
			return nil, fetchFailed(true, "the download took longer than %s", f.cfg.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) && ue.Err != nil && !isNetErr(ue.Err) {
			return nil, fetchFailed(false, "%v", ue.Err)
		}
		return nil, fetchFailed(true, "%v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		transient := res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests
		return nil, fetchFailed(transient, "the server answered %s", res.Status)
	}
	if res.ContentLength > f.cfg.MaxBytes {
		return nil, fetchFailed(false, "the file is %d bytes, over the limit of %d", res.ContentLength, f.cfg.MaxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, f.cfg.MaxBytes+1))
	if err != nil {
		return nil, fetchFailed(true, "reading the body: %v", err)
	}
	if int64(len(data)) > f.cfg.MaxBytes {
		return nil, fetchFailed(false, "the file is over the limit of %d bytes", f.cfg.MaxBytes)
	}
	return data, nil
}

func isNetErr(err error) bool {
	var ne net.Error
	var se syscall.Errno
	return errors.As(err, &ne) || errors.As(err, &se)
}

// fetchFailed builds a fetch_failed error: transient ones are of kind
// Unavailable (worth retrying), the others Unprocessable (never retried).
func fetchFailed(transient bool, format string, args ...any) *catalog.Error {
	kind := catalog.KindUnprocessableImage
	if transient {
		kind = catalog.KindUnavailable
	}
	return catalog.Errorf(kind, catalog.FailFetch, format, args...)
}

// blocked lists the ranges no fetch may reach unless allowlisted.
var blocked = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this" network
		"10.0.0.0/8",      // private
		"100.64.0.0/10",   // carrier-grade NAT
		"127.0.0.0/8",     // loopback
		"169.254.0.0/16",  // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",   // private
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay
		"192.168.0.0/16",  // private
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, broadcast
		"::/96",           // IPv4-compatible (deprecated): ::127.0.0.1 (mapped ::ffff:a.b.c.d are judged as a.b.c.d)
		"::1/128",         // loopback
		"64:ff9b::/96",    // NAT64: could reach any IPv4
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"2001::/32",       // Teredo
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds an IPv4
		"fc00::/7",        // unique local (fd00:ec2::254 is AWS metadata)
		"fe80::/10",       // link-local
		"ff00::/8",        // multicast
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Allowed reports whether a connection to addr may be made: it must be a
// global unicast address outside every blocked range, or inside allow.
func Allowed(addr netip.Addr, allow []netip.Prefix) error {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return errors.New("invalid address")
	}
	for _, p := range allow {
		if p.Contains(addr) {
			return nil
		}
	}
	for _, p := range blocked {
		if p.Contains(addr) {
			return fmt.Errorf("address %s is in the blocked range %s", addr, p)
		}
	}
	if !addr.IsGlobalUnicast() {
		return fmt.Errorf("address %s is not a global unicast address", addr)
	}
	return nil
}

// ParseAllow reads a comma-separated list of CIDR prefixes or addresses.
func ParseAllow(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
