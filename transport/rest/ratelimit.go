package rest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/vitrine-dev/vitrine/catalog/access"
	"go.uber.org/zap"
)

// clientAddr is the address of the client that sent the request: the
// connection's peer, or, when the peer is a trusted proxy, the rightmost
// X-Forwarded-For address that is not a trusted proxy. The header is never
// believed from anyone else: a client cannot pick its own address.
func clientAddr(ctx *fasthttp.RequestCtx, trusted []netip.Prefix) netip.Addr {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	peer = peer.Unmap()
	if len(trusted) == 0 || !inPrefixes(peer, trusted) {
		return peer
	}
	addr := peer
	var hops [][]byte
	for k, v := range ctx.Request.Header.All() {
		if strings.EqualFold(string(k), "X-Forwarded-For") {
			hops = append(hops, v)
		}
	}
	// Right to left: the last hop was added by the proxy closest to us.
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(string(hops[i]), ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr // garbage: stop at the last address we could trust
			}
			addr = a.Unmap()
			if !inPrefixes(addr, trusted) {
				return addr
			}
		}
	}
	return addr
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDRs.
func ParseTrustedProxies(items []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range items {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ParseRate reads a rate such as "100/s", "6000/min" or "0" (off).
func ParseRate(v string) (access.Rate, error) {
	if v == "0" || v == "off" {
		return access.Rate{}, nil
	}
	n, unit, ok := strings.Cut(v, "/")
	limit, err := strconv.Atoi(n)
	if !ok || err != nil || limit <= 0 {
		return access.Rate{}, fmt.Errorf("must be N/s, N/min or N/h (or 0 for no limit), got %q", v)
	}
	periods := map[string]time.Duration{"s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour}
	period, ok := periods[unit]
	if !ok {
		return access.Rate{}, fmt.Errorf("must be N/s, N/min or N/h (or 0 for no limit), got %q", v)
	}
	if period/time.Duration(limit) <= 0 {
		return access.Rate{}, fmt.Errorf("%q is more than one request per nanosecond", v)
	}
	return access.Rate{Limit: limit, Period: period, Burst: limit}, nil
}

// callerKey names who a request counts against, for rate limits and
// stream slots: its API key ("k:"), or without one its client address
// ("a:", and "aw:" for anonymous writes, which have a rate of their own);
// addr is that address (the zero value for a key).
func (s *Server) callerKey(ctx *fasthttp.RequestCtx, p principal, write bool) (key string, addr netip.Addr) {
	if !p.anonymous() {
		return "k:" + p.keyID, addr
	}
	addr = clientAddr(ctx, s.cfg.TrustedProxies)
	if write {
		return "aw:" + addr.String(), addr
	}
	return "a:" + addr.String(), addr
}

// limitRequest counts the request against its client's rate, sets the
// RateLimit-Policy and RateLimit headers (draft-ietf-httpapi-ratelimit-
// headers) and reports whether it may go on. A limiter that fails lets
// the request through: limits protect the service, they must not take it
// down.
func (s *Server) limitRequest(ctx *fasthttp.RequestCtx, p principal, write bool) bool {
	rate, policy, policyH := s.cfg.RateKey, "key", s.policyKey
	switch {
	case !p.anonymous():
	case write:
		rate, policy, policyH = s.cfg.RateAnonymousWrites, "anonymous-writes", s.policyAnonymousWrites
	default:
		rate, policy, policyH = s.cfg.RateAnonymous, "anonymous", s.policyAnonymous
	}
	if rate.Off() || s.deps.Limiter == nil {
		return true
	}
	key, addr := s.callerKey(ctx, p, write)
	if p.anonymous() {
		s.warnUntrustedProxy(ctx, addr)
	}
	c, cancel := context.WithTimeout(context.Background(), time.Second)
	d, err := s.deps.Limiter.Allow(c, key, rate)
	cancel()
	if err != nil {
		s.log.Warn("rate limiter failed; request let through", zap.Error(err))
		return true
	}
	h := &ctx.Response.Header
	h.Set("RateLimit-Policy", policyH)
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = append(b, policy...)
	b = append(b, `";r=`...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, int64(ceilSeconds(d.Reset)), 10)
	h.SetBytesV("RateLimit", b)
	if d.Allowed {
		return true
	}
	retry := ceilSeconds(d.RetryAfter)
	h.Set("Retry-After", strconv.Itoa(retry))
	writeProblem(ctx, http.StatusTooManyRequests, "rate_limited",
		fmt.Sprintf("too many requests: the %s limit is %d per %s; retry in %d s", policy, rate.Limit, rate.Period, retry), nil)
	return false
}

// warnUntrustedProxy logs, once per process, that anonymous requests
// arrive through a proxy whose X-Forwarded-For is not believed: every
// client behind it then shares the proxy's address, and so one anonymous
// rate limit (README, "Behind a CDN or load balancer").
func (s *Server) warnUntrustedProxy(ctx *fasthttp.RequestCtx, addr netip.Addr) {
	if s.xffWarned.Load() || len(ctx.Request.Header.Peek("X-Forwarded-For")) == 0 {
		return
	}
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	if addr != peer.Unmap() || !s.xffWarned.CompareAndSwap(false, true) {
		return // the header was believed, or someone else warned
	}
	s.log.Warn("anonymous requests arrive with X-Forwarded-For from a peer not in VITRINE_TRUSTED_PROXIES: "+
		"every client behind that proxy shares its address and one anonymous rate limit; "+
		"set VITRINE_TRUSTED_PROXIES to the proxies' addresses (README, \"Behind a CDN or load balancer\")",
		zap.Stringer("peer", addr))
}

// policyHeader is the RateLimit-Policy of a rate: its burst as the quota
// of the window that burst takes to refill.
func policyHeader(policy string, rate access.Rate) string {
	if rate.Off() {
		return ""
	}
	return fmt.Sprintf(`%q;q=%d;w=%d`, policy, rate.Burst, ceilSeconds(rate.Period*time.Duration(max(rate.Burst, 1))/time.Duration(rate.Limit)))
}

func ceilSeconds(d time.Duration) int {
	return max(int(math.Ceil(d.Seconds())), 0)
}
