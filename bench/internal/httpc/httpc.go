// Package httpc is the load generator's HTTP client: fasthttp's HostClient
// over keep-alive connections to one host, with a request/response pair per
// worker so that the hot path allocates nothing.
package httpc

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Client talks to one base URL.
type Client struct {
	base    string // scheme://host[:port], no trailing slash
	hc      *fasthttp.HostClient
	timeout time.Duration
}

// New is a client of base (http or https URL; a path prefix is kept) with
// at most maxConns connections.
func New(base string, maxConns int, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target URL %q: want http(s)://host[:port]", base)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	return &Client{
		base: strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"),
		hc: &fasthttp.HostClient{
			Addr: addr, IsTLS: u.Scheme == "https", MaxConns: max(maxConns, 1),
			ReadTimeout: timeout, WriteTimeout: timeout, MaxIdleConnDuration: time.Minute,
			MaxConnWaitTimeout: timeout, NoDefaultUserAgentHeader: true,
			DisableHeaderNamesNormalizing: false, ReadBufferSize: 16 << 10,
		},
		timeout: timeout,
	}, nil
}

// Base is the base URL.
func (c *Client) Base() string { return c.base }

// Exchange is one worker's reusable request and response.
type Exchange struct {
	Req  fasthttp.Request
	Resp fasthttp.Response
}

// Do sends method path (relative to the base URL) with body of type ctype
// (no body when ctype is ""), and returns the status. The response stays in
// x.Resp until the next call.
func (c *Client) Do(x *Exchange, method, path string, ctype string, body []byte) (int, error) {
	x.Req.Reset()
	x.Resp.Reset()
	x.Req.Header.SetMethod(method)
	x.Req.SetRequestURI(c.base + path)
	if ctype != "" {
		x.Req.Header.SetContentType(ctype)
		x.Req.SetBodyRaw(body)
	}
	if err := c.hc.DoTimeout(&x.Req, &x.Resp, c.timeout); err != nil {
		return 0, err
	}
	return x.Resp.StatusCode(), nil
}

// Fail classifies a transport error: "timeout" or "transport".
func Fail(err error) string {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return "timeout"
	}
	return "transport"
}

// Get is a one-off GET that returns a copy of the body.
func (c *Client) Get(path string) (int, []byte, error) {
	var x Exchange
	st, err := c.Do(&x, "GET", path, "", nil)
	if err != nil {
		return 0, nil, err
	}
	return st, append([]byte(nil), x.Resp.Body()...), nil
}

// Close drops the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }
