package rest

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
)

// streamSlots bounds the live event streams a node holds: all of them
// together, and those of one client (an API key, or the client address
// without one). A stream holds its connection for up to EventsMaxAge, and
// the rate limit counts only the request that opened it; without these
// bounds one client could hold every connection the node accepts.
type streamSlots struct {
	slots
}

func newStreamSlots(most, perClient int) *streamSlots {
	return &streamSlots{slots: slots{most: most, perHolder: perClient, held: map[string]int{}}}
}

// streamRetryAfter is the Retry-After of a refused stream, in seconds: a
// slot frees when a stream ends, which no clock predicts.
const streamRetryAfter = 10

// acquire takes a slot for client, or answers 429 (the client holds its
// share) or 503 (the node holds its most) and returns false. release gives
// the slot back; it may be called more than once.
func (s *streamSlots) acquire(ctx *fasthttp.RequestCtx, client string) (release func(), ok bool) {
	switch s.take(client) {
	case holderFull:
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(streamRetryAfter))
		writeProblem(ctx, http.StatusTooManyRequests, "too_many_streams",
			"this client already holds "+strconv.Itoa(s.perHolder)+" live event streams, the most one API key or, without a key, one client address may hold; close one first", nil)
		return nil, false
	case allSlotsFull:
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(streamRetryAfter))
		writeProblem(ctx, http.StatusServiceUnavailable, "streams_exhausted",
			"this node already serves "+strconv.Itoa(s.most)+" live event streams, its most; retry later", nil)
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { s.give(client) }) }, true
}

// streamClient names who a stream counts against: its API key, or the
// client address without one.
func (s *Server) streamClient(ctx *fasthttp.RequestCtx, p principal) string {
	key, _ := s.callerKey(ctx, p, false)
	return key
}
