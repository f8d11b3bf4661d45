package rest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// limitListener bounds open connections, in all and per client address.
// A connection over a bound gets a problem document (503 over the total,
// 429 over the per-address bound) and is closed before any request is
// read, so a flood of connections costs a few bytes each.
type limitListener struct {
	net.Listener
	max, perIP int
	ids        *requestIDs
	refused    interface{ Inc() } // counts refused connections

	slots *slots // per client address
}

func newLimitListener(ln net.Listener, most, perIP int, ids *requestIDs, refused interface{ Inc() }) *limitListener {
	return &limitListener{Listener: ln, max: most, perIP: perIP, ids: ids, refused: refused, slots: newSlots(most, perIP)}
}

// Accept returns the next connection within bounds; those over a bound are
// answered and closed here.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		over := 0
		switch l.slots.take(ip) {
		case holderFull:
			over = http.StatusTooManyRequests
		case allSlotsFull:
			over = http.StatusServiceUnavailable
		}
		if over != 0 {
			l.refused.Inc()
			go l.refuse(c, over)
			continue
		}
		return &countedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) done(ip string) { l.slots.give(ip) }

// refuse answers a connection over a bound and closes it.
func (l *limitListener) refuse(c net.Conn, status int) {
	defer c.Close() //nolint:errcheck // a refused connection: the answer is best effort, nothing follows
	detail := fmt.Sprintf("the server holds %d connections, its most; retry shortly", l.max)
	code := "too_many_connections"
	if status == http.StatusTooManyRequests {
		detail = fmt.Sprintf("this address holds %d connections, the most one client may open; reuse them", l.perIP)
		code = "too_many_connections_from_address"
	}
	id := string(l.ids.appendID(nil, l.ids.next()))
	body, _ := json.Marshal(problem{Type: problemType(code), Title: http.StatusText(status), Status: status,
		Detail: detail, Code: code, RequestID: id})
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\nContent-Length: %d\r\n"+
		"Retry-After: 1\r\nX-Request-ID: %s\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), id, body)
}

func hostOf(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// countedConn gives its slot back when closed (once).
type countedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.done(c.ip) })
	return c.Conn.Close()
}
