// Package rest is vitrine's HTTP front door: a fasthttp server whose
// handlers authenticate and limit requests, call the product service, and
// answer JSON or RFC 9457 problem documents.
package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/catalog/access"
)

// Products is what the front door needs of the product side. Writes take
// the owner the caller's key is bound to (0: any).
type Products interface {
	Get(ctx context.Context, id string) (actors.Product, error)
	Create(ctx context.Context, doc []byte, owner int64) (actors.Product, error)
	Replace(ctx context.Context, id string, doc []byte, ifMatch string, owner int64) (actors.Product, error)
	Patch(ctx context.Context, id string, patch []byte, ifMatch string, owner int64) (actors.Product, error)
	Delete(ctx context.Context, id string, ifMatch string, owner int64) error
	// List returns a page of products rendered as Get renders them.
	List(ctx context.Context, f catalog.ProductFilter) ([]actors.Product, error)
	Image(ctx context.Context, productID, imageID string) (*catalog.Image, []byte, error)
}

// Uploader accepts image uploads and imports.
type Uploader interface {
	Upload(ctx context.Context, productID string, data []byte, owner int64) (img *catalog.Image, body []byte, existing bool, err error)
	Import(ctx context.Context, productID, url string, owner int64) (*catalog.Image, []byte, error)
}

// Reprocessor runs an image's processing again.
type Reprocessor interface {
	Reprocess(ctx context.Context, productID, imageID string, owner int64) ([]byte, error)
}

// Admin is what operators reach under /admin.
type Admin interface {
	ListDeadLetters(ctx context.Context, limit int) ([]catalog.DeadLetter, error)
	ReplayDeadLetter(ctx context.Context, imageID string) (catalog.Job, error)
}

// Files opens stored variant files by key.
type Files interface {
	Path(key string) (string, error)
}

// Check is a readiness check of one dependency.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Config configures the front door. Zero values take the defaults that
// New documents.
type Config struct {
	// MaxUploadBytes is the largest image accepted (25 MiB).
	MaxUploadBytes int
	// MaxJSONBytes is the largest JSON body accepted (1 MiB).
	MaxJSONBytes int
	// MaxImportBytes bounds an import file (100 MiB), MaxImportRows its
	// rows (100,000).
	MaxImportBytes int
	MaxImportRows  int
	// RequestTimeout bounds the work of one request (30 s).
	RequestTimeout time.Duration

	// AdminToken is the bootstrap credential: it acts as a key with the
	// admin scope. Empty: none.
	AdminToken string
	// AnonymousWrites lets requests without a key write (development
	// only; the configuration refuses it on a non-loopback address).
	AnonymousWrites bool
	// PrivateReads makes reads need a key with the read scope.
	PrivateReads bool
	// KeyCacheTTL is how long a node trusts what it looked up of a key: a
	// revoked key stops working on every node within it (5 s).
	KeyCacheTTL time.Duration

	// RateAnonymous limits the reads of each client address without a key,
	// RateAnonymousWrites its writes (counted apart: a crowd of readers
	// behind one proxy does not use up a writer's budget, nor the other way
	// round); RateKey limits each API key. Off when zero.
	RateAnonymous       access.Rate
	RateAnonymousWrites access.Rate
	RateKey             access.Rate
	// RateAuthFailures limits failed authentications per client address;
	// past it, credentials not already known good get 429 without a
	// store lookup. Off when zero.
	RateAuthFailures access.Rate
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// IdempotencyTTL is how long an Idempotency-Key's response is kept (24 h).
	IdempotencyTTL time.Duration

	// UploadMemory is the budget of upload bytes in flight, all uploads
	// together (64 MiB); AdmissionWait is how long an upload waits for
	// room before it is refused with 503 (10 s).
	UploadMemory  int64
	AdmissionWait time.Duration

	// HeaderTimeout bounds receiving a request's header (10 s), and
	// ReadTimeout its body, from the end of its header (60 s);
	// WriteTimeout bounds writing a response (60 s); IdleTimeout an idle
	// keep-alive connection (2 min).
	HeaderTimeout time.Duration
	ReadTimeout   time.Duration
	WriteTimeout  time.Duration
	IdleTimeout   time.Duration
	// MaxHeaderBytes bounds a request's header (16 KiB).
	MaxHeaderBytes int
	// MaxConns bounds open connections (10,000); MaxConnsPerIP those of
	// one client address (0: no limit).
	MaxConns      int
	MaxConnsPerIP int
	// CORSOrigins are the origins browsers may call from ("*": any); empty
	// turns CORS off.
	CORSOrigins []string
	// MetricsAccess is who may read /metrics: "admin" (a key with the admin
	// scope), "public" or "off" (no route; a separate listener may serve
	// them).
	MetricsAccess string

	// MediaURL is where variant files are served from (VITRINE_PUBLIC_URL,
	// or this server's /media): the admin page may show images from there.
	MediaURL string
	// RenderWidths is the ladder on-demand widths snap to (default
	// catalog.DefaultWidths); SigningKeys, when set, are the keys an
	// on-demand URL must be signed with (any one of them: a rotation
	// accepts the old and the new).
	RenderWidths catalog.Widths
	SigningKeys  [][]byte

	// EventsHeartbeat is how often an idle event stream sends a comment
	// (15 s); EventsBuffer how many events a subscriber may fall behind
	// before it is dropped (256); EventsMaxAge how long one stream lasts
	// before the client is asked to reconnect (10 min), so that a revoked
	// key stops receiving; EventsWriteTimeout how long a write to a stream
	// may block before the client is cut off (10 s).
	EventsHeartbeat    time.Duration
	EventsBuffer       int
	EventsMaxAge       time.Duration
	EventsWriteTimeout time.Duration
	// EventStreams bounds the live event streams this node holds (5,000;
	// beyond, 503), and EventStreamsPerClient those of one API key or,
	// without a key, one client address (10; beyond, 429). Negative: no
	// bound.
	EventStreams          int
	EventStreamsPerClient int
}

func (c *Config) defaults() {
	if c.RenderWidths.Step <= 0 || c.RenderWidths.Max <= 0 {
		c.RenderWidths = catalog.DefaultWidths
	}
	setDefault := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	setDuration := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setDefault(&c.MaxUploadBytes, 25<<20)
	setDefault(&c.MaxJSONBytes, 1<<20)
	setDefault(&c.MaxImportBytes, 100<<20)
	setDefault(&c.MaxImportRows, 100_000)
	setDefault(&c.MaxHeaderBytes, 16<<10)
	setDefault(&c.MaxConns, 10_000)
	setDuration(&c.RequestTimeout, 30*time.Second)
	setDuration(&c.KeyCacheTTL, 5*time.Second)
	setDuration(&c.IdempotencyTTL, 24*time.Hour)
	setDuration(&c.AdmissionWait, 10*time.Second)
	setDuration(&c.HeaderTimeout, 10*time.Second)
	setDuration(&c.ReadTimeout, 60*time.Second)
	setDuration(&c.WriteTimeout, 60*time.Second)
	setDuration(&c.IdleTimeout, 2*time.Minute)
	setDuration(&c.EventsHeartbeat, 15*time.Second)
	setDuration(&c.EventsMaxAge, 10*time.Minute)
	setDuration(&c.EventsWriteTimeout, 10*time.Second)
	setDefault(&c.EventsBuffer, 256)
	if c.EventStreams == 0 {
		c.EventStreams = 5_000
	}
	if c.EventStreamsPerClient == 0 {
		c.EventStreamsPerClient = 10
	}
	if c.UploadMemory <= 0 {
		c.UploadMemory = 64 << 20
	}
}

// Deps are the services the front door calls.
type Deps struct {
	Products  Products
	Uploads   Uploader
	Reprocess Reprocessor
	Gallery   Gallery
	Imports   Imports
	Admin     Admin
	// Keys holds API keys; nil allows only the admin token and anonymous
	// access.
	Keys access.KeyStore
	// Limiter counts requests for rate limits; nil turns them off.
	Limiter access.RateLimiter
	// Idempotency keeps Idempotency-Key responses; nil ignores the header.
	Idempotency access.IdempotencyStore
	// Files serves variant files of the embedded file store; Blobs streams
	// them from an object store when Files is nil. With neither, /media is
	// not served (a CDN in front of object storage serves the files).
	Files Files
	Blobs BlobStreamer
	// Renders makes files on demand (GET /media/products/{id}/{image}/w320);
	// nil: those URLs answer 404.
	Renders Renders
	// Events are products' events, streamed by GET /products/{id}/events;
	// nil: that route answers 503.
	Events Events
	// Webhooks is the webhook delivery log; nil: an empty one.
	Webhooks catalog.WebhookLog
	Checks   []Check
	// NewID makes ids (of keys); Now is the clock. Defaults: random, time.Now.
	NewID func() string
	Now   func() time.Time
	// Metrics is where the front door registers its metrics, and Gatherer
	// what /metrics exposes; nil: a private registry.
	Metrics  prometheus.Registerer
	Gatherer prometheus.Gatherer
	// Tracer makes a server span per request when tracing is on; nil: off,
	// at no cost.
	Tracer trace.TracerProvider
}

// Server is the HTTP front door.
type Server struct {
	cfg      Config
	products Products
	deps     Deps
	log      *zap.Logger
	router   *router.Router
	hotGet   fasthttp.RequestHandler // GET /products/{id}'s route, for dispatch
	patterns patterns                // the routes' methods by pattern, for Allow
	ready    *readiness
	ids      *requestIDs
	auth     *authenticator
	budget   *uploadBudget
	bufs     *bufPool
	cors     *cors
	hub      *hub // nil without Deps.Events
	streams  *streamSlots
	assets   map[string]asset
	adminCSP string
	srv      *fasthttp.Server
	now      func() time.Time
	// draining is set by Drain: readiness fails and connections close
	// after their current response, so clients move to other nodes.
	draining    atomic.Bool
	httpm       *httpMetrics
	metricsHTTP fasthttp.RequestHandler
	tracer      trace.Tracer // nil: tracing off
	// The RateLimit-Policy headers of the two rates, made once.
	policyAnonymous, policyAnonymousWrites, policyKey string
	// stopped is closed by Shutdown: background work of requests (an
	// idempotent answer still to be stored) ends with the server.
	stopped chan struct{}
	stop    sync.Once
	// xffWarned is set once an anonymous request came with X-Forwarded-For
	// from a peer not trusted as a proxy (logged once per process).
	xffWarned atomic.Bool
}

// routeAccess is who may call a route.
type routeAccess int

const (
	// open routes answer anyone, unlimited: health, the API document,
	// media files.
	open routeAccess = iota
	// reader routes need the read scope, or nothing when reads are public.
	reader
	// writer routes need the write scope (or nothing in development).
	writer
	// operator routes need the admin scope.
	operator
)

// New returns a Server with every route registered.
func New(cfg Config, deps Deps, log *zap.Logger) *Server {
	cfg.defaults()
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.NewID == nil {
		deps.NewID = randomID
	}
	if deps.Metrics == nil {
		reg := prometheus.NewRegistry()
		deps.Metrics, deps.Gatherer = reg, reg
	}
	s := &Server{cfg: cfg, products: deps.Products, deps: deps, log: log, now: deps.Now, stopped: make(chan struct{}),
		httpm: newHTTPMetrics(deps.Metrics), metricsHTTP: metricsHandler(deps.Gatherer),
		policyAnonymous: policyHeader("anonymous", cfg.RateAnonymous), policyKey: policyHeader("key", cfg.RateKey),
		policyAnonymousWrites: policyHeader("anonymous-writes", cfg.RateAnonymousWrites),
		budget:                newUploadBudget(cfg.UploadMemory), bufs: newBufPool(cfg.MaxUploadBytes + multipartSlack), cors: newCORS(cfg.CORSOrigins)}
	anonymous := access.ScopeRead
	switch {
	case cfg.AnonymousWrites:
		anonymous = access.ScopeWrite
	case cfg.PrivateReads:
		anonymous = ""
	}
	var keys keyLookup = noKeys{}
	if deps.Keys != nil {
		keys = deps.Keys
	}
	if deps.Tracer != nil {
		s.tracer = deps.Tracer.Tracer("github.com/vitrine-dev/vitrine/transport/rest")
	}
	s.auth = newAuthenticator(keys, cfg.AdminToken, cfg.KeyCacheTTL, anonymous, deps.Now)
	s.auth.failures.limiter, s.auth.failures.rate, s.auth.failures.trusted = deps.Limiter, cfg.RateAuthFailures, cfg.TrustedProxies
	r := router.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleOPTIONS = s.cors != nil
	r.GlobalOPTIONS = s.preflight
	s.router = r
	s.ids = newRequestIDs()
	if deps.Events != nil {
		s.hub = newHub(deps.Events, cfg.EventsBuffer, log.Named("events"))
		s.streams = newStreamSlots(cfg.EventStreams, cfg.EventStreamsPerClient)
	}
	s.assets, s.adminCSP = loadAssets(), adminCSP(originOf(cfg.MediaURL))
	s.ready = &readiness{checks: deps.Checks, now: deps.Now}
	s.route("GET", "/", open, s.index)
	s.route("GET", "/healthz", open, s.healthz)
	s.route("GET", "/readyz", open, s.readyz)
	s.route("GET", "/openapi.json", open, s.openapi)
	s.route("POST", "/products", writer, s.createProduct)
	s.route("GET", "/products", reader, s.listProducts)
	s.route("GET", "/products/export", reader, s.exportProducts)
	s.route("GET", "/products/{id}", reader, s.getProduct)
	s.route("PUT", "/products/{id}", writer, s.replaceProduct)
	s.route("PATCH", "/products/{id}", writer, s.patchProduct)
	s.route("DELETE", "/products/{id}", writer, s.deleteProduct)
	s.route("POST", "/products/{id}/images", writer, s.uploadImage)
	s.route("GET", "/products/{id}/events", reader, s.productEvents)
	s.route("GET", "/products/{id}/images", reader, s.listImages)
	s.route("PUT", "/products/{id}/images/order", writer, s.orderImages)
	s.route("GET", "/products/{id}/images/{image_id}", reader, s.getImage)
	s.route("PATCH", "/products/{id}/images/{image_id}", writer, s.patchImage)
	s.route("DELETE", "/products/{id}/images/{image_id}", writer, s.deleteImage)
	s.route("POST", "/products/{id}/images/{image_id}/reprocess", writer, s.reprocessImage)
	if deps.Imports != nil {
		s.route("POST", "/imports", writer, s.createImport)
		s.route("GET", "/imports/{id}", writer, s.getImport)
		s.route("GET", "/imports/{id}/errors", writer, s.importErrors)
	}
	s.route("GET", "/admin/dead-letters", operator, s.listDeadLetters)
	s.route("POST", "/admin/dead-letters/{image_id}/replay", operator, s.replayDeadLetter)
	s.route("POST", "/admin/keys", operator, s.createKey)
	s.route("GET", "/admin/keys", operator, s.listKeys)
	s.route("DELETE", "/admin/keys/{id}", operator, s.revokeKey)
	switch cfg.MetricsAccess {
	case "public":
		s.route("GET", "/metrics", open, s.metrics)
	case "", "admin":
		s.route("GET", "/metrics", operator, s.metrics)
	}
	s.route("GET", "/admin/webhooks/deliveries", operator, s.listWebhookAttempts)
	s.route("GET", "/admin/", open, s.adminIndex)
	s.route("GET", "/admin/assets/{name}", open, s.adminAsset)
	if deps.Files != nil || deps.Blobs != nil {
		s.route("GET", "/media/{key:*}", open, s.media)
	}
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/admin" && (ctx.IsGet() || ctx.IsHead()) {
			s.adminRedirect(ctx, principal{}) // the router keeps /admin/ only
			return
		}
		writeProblem(ctx, http.StatusNotFound, "route_not_found", fmt.Sprintf("no route %s %s", ctx.Method(), ctx.Path()), nil)
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		// The router's Allow names the methods of every pattern the path
		// matches: of /products/{id} for /products/export too, which a
		// static segment takes first.
		ctx.Response.Header.Set("Allow", s.patterns.allow(string(ctx.Path())))
		writeProblem(ctx, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", ctx.Method(), ctx.Path(), ctx.Response.Header.Peek("Allow")), nil)
	}
	// A method of /products/{id} sent to /products/export would reach the
	// product's handler ("export" taken for an id): it is not allowed.
	for pattern, methods := range s.patterns.shadowed() {
		for _, m := range methods {
			r.Handle(m, pattern, r.MethodNotAllowed)
		}
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		exchangeOf(ctx).err = fmt.Errorf("panic: %v", v)
		writeProblem(ctx, http.StatusInternalServerError, "internal", "an internal error occurred; the request id identifies it in the logs", nil)
	}
	s.srv = &fasthttp.Server{
		Handler: s.logged(s.dispatch),
		Name:    "vitrine",
		// Bodies up to the JSON limit are read before the handler runs;
		// larger ones (uploads) stream, read by the handler under the
		// upload budget.
		MaxRequestBodySize:           cfg.MaxJSONBytes,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ReadBufferSize:               cfg.MaxHeaderBytes,
		ReadTimeout:                  cfg.HeaderTimeout,
		HeaderReceived:               s.headerReceived,
		WriteTimeout:                 cfg.WriteTimeout,
		IdleTimeout:                  cfg.IdleTimeout,
		// Connections are bounded by limitListener, which answers with a
		// problem document; fasthttp's own limit sits above it.
		Concurrency:           cfg.MaxConns + 64,
		ErrorHandler:          s.transportError,
		Logger:                zap.NewStdLog(log.Named("fasthttp")),
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
	return s
}

// headerReceived gives a request's body its own time limit, and makes a
// body that will stream (over the JSON limit) reach its handler after its
// first byte: the handler refuses it from its headers, or reads it under
// the upload budget, without fasthttp waiting to read ahead.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	n := h.ContentLength()
	if n == 0 {
		// No body (most reads): nothing more to receive, and no deadline
		// to move (a system call and a timer update a request).
		return fasthttp.RequestConfig{}
	}
	rc := fasthttp.RequestConfig{ReadTimeout: s.cfg.ReadTimeout}
	if n > s.cfg.MaxJSONBytes {
		rc.MaxRequestBodySize = 1
	}
	return rc
}

// noKeys is the key store of a server without one: every key is unknown.
type noKeys struct{}

func (noKeys) KeyByHash(context.Context, string) (*access.APIKey, error) {
	return nil, catalog.NotFound("no such key")
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Routes lists every route as "METHOD path" (not the ones that only answer
// 405).
func (s *Server) Routes() []string {
	var out []string
	for path, methods := range s.patterns {
		for _, m := range methods {
			out = append(out, m+" "+path)
		}
	}
	return out
}

// Handler is the server's request handler, middleware included.
func (s *Server) Handler() fasthttp.RequestHandler { return s.srv.Handler }

// Serve serves requests on ln until Shutdown or ctx ends; meanwhile it
// purges expired idempotency records.
func (s *Server) Serve(ln net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.purgeIdempotencyKeys(ctx, 10*time.Minute)
	return s.srv.Serve(newLimitListener(ln, s.cfg.MaxConns, s.cfg.MaxConnsPerIP, s.ids, s.httpm.refused.WithLabelValues("connections")))
}

// Drain starts a graceful leave: /readyz answers 503 from now on, and every
// response closes its connection, so that a load balancer stops sending
// requests here and clients hold no idle connection when Shutdown comes.
// Requests keep being served; event streams end (their clients reconnect
// elsewhere with Last-Event-ID).
func (s *Server) Drain() {
	s.draining.Store(true)
	if s.hub != nil {
		s.hub.close()
	}
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop.Do(func() { close(s.stopped) })
	if s.hub != nil {
		s.hub.close()
	}
	return s.srv.ShutdownWithContext(ctx)
}

// transportError answers requests fasthttp could not even parse: they get
// a problem document with a request id like any other.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	x := exchangeOf(ctx)
	x.assignID(ctx, s.ids)
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeProblem(ctx, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("the request body is over the limit of %d bytes", s.srv.MaxRequestBodySize), nil)
	case errors.As(err, &small) || strings.Contains(err.Error(), "small read buffer"):
		writeProblem(ctx, http.StatusRequestHeaderFieldsTooLarge, "header_too_large",
			fmt.Sprintf("the request header is over the limit of %d bytes", s.cfg.MaxHeaderBytes), nil)
	case isTimeout(err):
		writeProblem(ctx, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request was not received in time (header within %s, body within %s)", s.cfg.HeaderTimeout, s.cfg.ReadTimeout), nil)
	default:
		writeProblem(ctx, http.StatusBadRequest, "malformed_request", "the request could not be parsed: "+err.Error(), nil)
	}
	ctx.SetConnectionClose()
	if reason := refusalReason(x.problem); reason != "" {
		s.httpm.refused.WithLabelValues(reason).Inc()
	}
	s.log.Info("request refused", zap.Int("status", ctx.Response.StatusCode()), zap.String("request_id", x.requestID()), zap.Error(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logged assigns a request id and writes one log line per request. The
// line's fields are built only when its level is enabled: on the hot path a
// disabled log costs nothing.
func (s *Server) logged(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		x := &exchange{}
		ctx.SetUserValue(exchangeKey, x)
		x.assignID(ctx, s.ids)
		s.httpm.inFlight.Inc()
		var span trace.Span
		if s.tracer != nil {
			span = s.startSpan(ctx, x)
		}
		next(ctx)
		s.httpm.inFlight.Dec()
		// fasthttp read the clock as the request's handling began.
		took := time.Since(ctx.Time())
		s.httpm.observe(ctx, x, took)
		if span != nil {
			endSpan(ctx, span, x)
		}
		if s.draining.Load() {
			ctx.SetConnectionClose()
		}
		if x.linger {
			linger(ctx)
		}
		status := ctx.Response.StatusCode()
		level := zap.InfoLevel
		if status >= 500 {
			level = zap.ErrorLevel
		}
		ce := s.log.Check(level, "request")
		if ce == nil {
			return
		}
		fields := []zap.Field{
			zap.ByteString("method", ctx.Method()),
			zap.String("route", x.route),
			zap.ByteString("path", ctx.Path()),
			zap.Int("status", status),
			zap.Int("bytes", bodyBytes(&ctx.Response)),
			zap.Duration("latency", took),
			zap.String("request_id", x.requestID()),
		}
		if x.keyID != "" {
			fields = append(fields, zap.String("key_id", x.keyID))
		}
		if span != nil && span.SpanContext().HasTraceID() {
			fields = append(fields, zap.String("trace_id", span.SpanContext().TraceID().String()))
		}
		if x.err != nil {
			fields = append(fields, zap.Error(x.err))
		}
		ce.Write(fields...)
	}
}

// bodyBytes is the size of a response's body, or -1 for a stream (an event
// stream), whose body is still to be written when the line is (reading it
// here would wait for its end).
func bodyBytes(r *fasthttp.Response) int {
	if r.IsBodyStream() {
		return -1
	}
	return len(r.Body())
}

func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

// hotPath is the prefix of the hot read, GET /products/{id}.
const hotPath = "/products/"

// dispatch hands a request to its route. The hot read, GET /products/{id}
// with a well-formed id, goes straight to its route's handler: the
// router's match would cost three allocations (the parameter's copy, a
// slice and its boxing) and a tree walk on every cached read. Anything
// else, a malformed id included, goes through the router, which answers
// it as before.
func (s *Server) dispatch(ctx *fasthttp.RequestCtx) {
	if s.hotGet != nil && ctx.IsGet() {
		// The path as sent, as the router matches it: an escaped or
		// dotted path is not the hot one.
		path := ctx.Request.URI().PathOriginal()
		if len(path) == len(hotPath)+36 && string(path[:len(hotPath)]) == hotPath {
			if id := string(path[len(hotPath):]); catalog.ValidID(id) {
				s.serveHot(ctx, id)
				return
			}
		}
	}
	s.router.Handler(ctx)
}

// serveHot serves the hot read of product id, recovering from a panic as
// the router does for every other route.
func (s *Server) serveHot(ctx *fasthttp.RequestCtx, id string) {
	defer func() {
		if v := recover(); v != nil {
			s.router.PanicHandler(ctx, v)
		}
	}()
	exchangeOf(ctx).hotID = id
	s.hotGet(ctx)
}

// handler is a route's handler: it gets the request's principal.
type handler func(ctx *fasthttp.RequestCtx, p principal)

// route registers h under path (and HEAD for a GET route): it records the
// route pattern for the log, applies CORS, authenticates, authorizes and
// rate-limits before h runs.
func (s *Server) route(method, path string, need routeAccess, h handler) {
	obs, headObs := s.httpm.observers(path, method), s.httpm.observers(path, fasthttp.MethodHead)
	wrapped := func(ctx *fasthttp.RequestCtx) {
		x := exchangeOf(ctx)
		x.route = path
		if ctx.IsHead() {
			x.obs = headObs
		} else {
			x.obs = obs
		}
		if s.cors != nil {
			s.cors.apply(ctx)
		}
		var p principal
		if need != open {
			var ok bool
			if p, ok = s.admit(ctx, need); !ok {
				return
			}
		}
		h(ctx, p)
	}
	if method == fasthttp.MethodGet && path == hotPath+"{id}" {
		s.hotGet = wrapped
	}
	s.router.Handle(method, path, wrapped)
	s.patterns.add(method, path)
	if method == fasthttp.MethodGet {
		s.router.Handle(fasthttp.MethodHead, path, wrapped)
		s.patterns.add(fasthttp.MethodHead, path)
	}
}

// admit authenticates the request, checks its scope and counts it against
// its rate; it answers and returns false when the request may not go on.
func (s *Server) admit(ctx *fasthttp.RequestCtx, need routeAccess) (principal, bool) {
	p, err := s.auth.authenticate(ctx)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			writeAuthError(ctx, ae)
		} else {
			writeError(ctx, err)
		}
		return p, false
	}
	if !p.anonymous() {
		exchangeOf(ctx).keyID = p.keyID
	}
	scope := access.ScopeAdmin
	switch need {
	case reader:
		scope = access.ScopeRead
	case writer:
		scope = access.ScopeWrite
	}
	if e := s.auth.authorize(p, scope); e != nil {
		writeAuthError(ctx, e)
		return p, false
	}
	return p, s.limitRequest(ctx, p, need != reader)
}

// reqCtx is the context of one request's work: bounded by the request
// timeout, and within the request's trace when tracing is on.
func (s *Server) reqCtx(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(traceCtx(ctx), s.cfg.RequestTimeout)
}
