package rest

import (
	"context"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// exchange is what the front door records about one request while it is
// answered: its id, route, metrics, caller, error and problem code. It is
// one user value, set once by logged; a boxed user value for each of these
// cost an allocation apiece and a scan of the request's user values for
// every lookup, on the hot path.
type exchange struct {
	ids     *requestIDs
	n       uint64 // the id's number when the front door made the id
	id      string // the client's id, or the one made, once asked for
	route   string
	obs     *routeObservers
	keyID   string
	err     error
	problem string // the code of the problem answered, if any
	linger  bool
	trace   context.Context // the request span's, when tracing is on
	// hotID is the product id of a GET /products/{id} that dispatch
	// matched without the router.
	hotID string
}

// exchangeKey is the user value that holds a request's *exchange.
const exchangeKey = "vitrine.exchange"

// exchangeOf is the request's exchange; a request that reached a handler
// without logged (fasthttp's own error paths, tests) gets a fresh one.
func exchangeOf(ctx *fasthttp.RequestCtx) *exchange {
	if x, ok := ctx.UserValue(exchangeKey).(*exchange); ok {
		return x
	}
	x := &exchange{}
	ctx.SetUserValue(exchangeKey, x)
	return x
}

// requestID is the request's id ("" when it has none).
func (x *exchange) requestID() string {
	if x.id == "" && x.ids != nil {
		x.id = string(x.ids.appendID(nil, x.n))
	}
	return x.id
}

// requestIDs makes unique request ids cheaply: a random prefix per process
// and a counter, instead of a random read per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

// next numbers a new request.
func (r *requestIDs) next() uint64 { return r.n.Add(1) }

// appendID appends the id of request n to b.
func (r *requestIDs) appendID(b []byte, n uint64) []byte {
	return strconv.AppendUint(append(b, r.prefix...), n, 36)
}

// requestIDHeader is the request id header's name, in canonical form.
const requestIDHeader = "X-Request-ID"

// assignID gives the request its id: the client's when it sent a usable
// one, else a new one, answered in X-Request-ID without allocating.
func (x *exchange) assignID(ctx *fasthttp.RequestCtx, ids *requestIDs) {
	x.ids = ids
	if h := ctx.Request.Header.Peek(requestIDHeader); validRequestID(h) {
		x.id = string(h)
		ctx.Response.Header.Set(requestIDHeader, x.id)
		return
	}
	x.n = ids.next()
	var buf [48]byte
	ctx.Response.Header.SetCanonical([]byte(requestIDHeader), ids.appendID(buf[:0], x.n))
}
