// Package rest is vitrine's HTTP front door: a fasthttp server whose
// handlers parse requests, call the product service, and answer JSON or RFC
// 9457 problem documents.
package rest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
)

// Products is what the front door needs of the product side.
type Products interface {
	Get(ctx context.Context, id string) (actors.Product, error)
	Create(ctx context.Context, doc []byte) (actors.Product, error)
	Replace(ctx context.Context, id string, doc []byte, ifMatch string) (actors.Product, error)
	Patch(ctx context.Context, id string, patch []byte, ifMatch string) (actors.Product, error)
	Delete(ctx context.Context, id string, ifMatch string) error
	List(ctx context.Context, f catalog.ProductFilter) ([]*catalog.Product, error)
	Image(ctx context.Context, productID, imageID string) (*catalog.Image, []byte, error)
}

// Uploader accepts image uploads and imports.
type Uploader interface {
	Upload(ctx context.Context, productID string, data []byte) (img *catalog.Image, body []byte, existing bool, err error)
	Import(ctx context.Context, productID, url string) (*catalog.Image, []byte, error)
}

// Reprocessor runs an image's processing again.
type Reprocessor interface {
	Reprocess(ctx context.Context, productID, imageID string) ([]byte, error)
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

// Config configures the front door.
type Config struct {
	// MaxUploadBytes is the largest image accepted.
	MaxUploadBytes int
	// MaxJSONBytes is the largest JSON body accepted.
	MaxJSONBytes int
	// RequestTimeout bounds the work of one request.
	RequestTimeout time.Duration
	// Concurrency caps requests served at once; above it clients get 503.
	Concurrency int
	// AdminToken guards /admin with a bearer token; empty disables /admin.
	AdminToken string
}

// Deps are the services the front door calls.
type Deps struct {
	Products  Products
	Uploads   Uploader
	Reprocess Reprocessor
	Admin     Admin
	// Files serves stored variant files; nil when blobs are served
	// elsewhere (a CDN in front of object storage).
	Files  Files
	Checks []Check
}

// Server is the HTTP front door.
type Server struct {
	cfg      Config
	products Products
	deps     Deps
	log      *zap.Logger
	router   *router.Router
	ids      *requestIDs
	srv      *fasthttp.Server
	// draining is set by Drain: readiness fails and connections close
	// after their current response, so clients move to other nodes.
	draining atomic.Bool
}

// New returns a Server with every route registered.
func New(cfg Config, deps Deps, log *zap.Logger) *Server {
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 25 << 20
	}
	if cfg.MaxJSONBytes <= 0 {
		cfg.MaxJSONBytes = 1 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	s := &Server{cfg: cfg, products: deps.Products, deps: deps, log: log}
	r := router.New()
	r.RedirectTrailingSlash = false
	s.router = r
	s.ids = newRequestIDs()
	s.route("GET", "/healthz", s.healthz)
	s.route("GET", "/readyz", s.readyz)
	s.route("GET", "/openapi.json", s.openapi)
	s.route("POST", "/products", s.createProduct)
	s.route("GET", "/products", s.listProducts)
	s.route("GET", "/products/{id}", s.getProduct)
	s.route("PUT", "/products/{id}", s.replaceProduct)
	s.route("PATCH", "/products/{id}", s.patchProduct)
	s.route("DELETE", "/products/{id}", s.deleteProduct)
	s.route("POST", "/products/{id}/images", s.uploadImage)
	s.route("GET", "/products/{id}/images/{image_id}", s.getImage)
	s.route("POST", "/products/{id}/images/{image_id}/reprocess", s.reprocessImage)
	s.route("GET", "/admin/dead-letters", s.admin(s.listDeadLetters))
	s.route("POST", "/admin/dead-letters/{image_id}/replay", s.admin(s.replayDeadLetter))
	if deps.Files != nil {
		s.route("GET", "/media/{key:*}", s.media)
	}
	r.NotFound = func(ctx *fasthttp.RequestCtx) {
		writeProblem(ctx, http.StatusNotFound, "route_not_found", fmt.Sprintf("no route %s %s", ctx.Method(), ctx.Path()), nil)
	}
	r.MethodNotAllowed = func(ctx *fasthttp.RequestCtx) {
		writeProblem(ctx, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", ctx.Method(), ctx.Path(), ctx.Response.Header.Peek("Allow")), nil)
	}
	r.PanicHandler = func(ctx *fasthttp.RequestCtx, v any) {
		ctx.SetUserValue(errKey, fmt.Errorf("panic: %v", v))
		writeProblem(ctx, http.StatusInternalServerError, "internal", "an internal error occurred; the request id identifies it in the logs", nil)
	}
	s.srv = &fasthttp.Server{
		Handler:               s.logged(r.Handler),
		Name:                  "vitrine",
		MaxRequestBodySize:    cfg.MaxUploadBytes + 1<<20, // room for multipart framing
		ReadTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           2 * time.Minute,
		Concurrency:           cfg.Concurrency,
		ErrorHandler:          s.transportError,
		Logger:                zap.NewStdLog(log.Named("fasthttp")),
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
	return s
}

// Routes lists every registered route as "METHOD path".
func (s *Server) Routes() []string {
	var out []string
	for method, paths := range s.router.List() {
		for _, p := range paths {
			out = append(out, method+" "+p)
		}
	}
	return out
}

// Handler is the server's request handler, middleware included.
func (s *Server) Handler() fasthttp.RequestHandler { return s.srv.Handler }

// Serve serves requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Drain starts a graceful leave: /readyz answers 503 from now on, and every
// response closes its connection, so that a load balancer stops sending
// requests here and clients hold no idle connection when Shutdown comes.
// Requests keep being served.
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// transportError answers requests fasthttp could not even parse.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeProblem(ctx, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("the request body is over the limit of %d bytes", s.srv.MaxRequestBodySize), nil)
	default:
		writeProblem(ctx, http.StatusBadRequest, "malformed_request", "the request could not be parsed: "+err.Error(), nil)
	}
	ctx.SetConnectionClose()
}

const (
	requestIDKey = "vitrine.request_id"
	errKey       = "vitrine.error"
	routeKey     = "vitrine.route"
)

// logged assigns a request id and writes one log line per request. The
// line's fields are built only when its level is enabled: on the hot path a
// disabled log costs nothing.
func (s *Server) logged(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		var id string
		if h := ctx.Request.Header.Peek("X-Request-ID"); validRequestID(h) {
			id = string(h)
		} else {
			id = s.ids.next()
		}
		ctx.SetUserValue(requestIDKey, id)
		ctx.Response.Header.Set("X-Request-ID", id)
		next(ctx)
		if s.draining.Load() {
			ctx.SetConnectionClose()
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
		route, _ := ctx.UserValue(routeKey).(string)
		fields := []zap.Field{
			zap.ByteString("method", ctx.Method()),
			zap.String("route", route),
			zap.ByteString("path", ctx.Path()),
			zap.Int("status", status),
			zap.Int("bytes", len(ctx.Response.Body())),
			zap.Duration("latency", time.Since(start)),
			zap.String("request_id", id),
		}
		if err, ok := ctx.UserValue(errKey).(error); ok {
			fields = append(fields, zap.Error(err))
		}
		ce.Write(fields...)
	}
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

// requestIDs makes unique request ids cheaply: a random prefix per process
// and a counter, instead of a random read per request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &requestIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (r *requestIDs) next() string {
	return r.prefix + strconv.FormatUint(r.n.Add(1), 36)
}

// route registers h under path, recording the route pattern for the log.
func (s *Server) route(method, path string, h fasthttp.RequestHandler) {
	s.router.Handle(method, path, func(ctx *fasthttp.RequestCtx) {
		ctx.SetUserValue(routeKey, path)
		h(ctx)
	})
}

// reqCtx is the context of one request's work.
func (s *Server) reqCtx(ctx *fasthttp.RequestCtx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
}
