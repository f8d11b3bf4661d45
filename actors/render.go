package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/cluster"
)

// Renderer makes one file on demand from an image's original (see
// catalog.Render). Its errors are *catalog.Error values when the input is
// at fault.
type Renderer interface {
	Render(ctx context.Context, data []byte, r catalog.Render, focus *catalog.FocalPoint) (Rendition, error)
}

// renderBlobs is what renders need of the blob store.
type renderBlobs interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Create(ctx context.Context, key string, data []byte, contentType string) (bool, error)
	Delete(ctx context.Context, keys []string) error
}

// RenderDeps are what a node's on-demand renders need.
type RenderDeps struct {
	Blobs    renderBlobs
	Renderer Renderer
	// Widths is the ladder requested widths snap to.
	Widths catalog.Widths
	// Workers is how many renders run at once on this node (default 1):
	// workers of their own, apart from the image jobs' workers, so that
	// on-demand traffic never takes an upload's worker.
	Workers int
	// Queue is how many renders may wait for a worker (default 16); past
	// it, a request for a new render is refused (503 with Retry-After).
	Queue int
	// Timeout bounds one render, reading the original and storing the
	// file included (default 30 s).
	Timeout time.Duration
	Log     *zap.Logger
	// Registerer, when set, gets vitrine_renders_total and
	// vitrine_render_queue.
	Registerer prometheus.Registerer
}

// RenderPool runs a node's on-demand renders: a bounded queue and its own
// workers. Product grains submit to it, each render once however many
// requests wait for it (the grain of the image's product joins them), so
// that a render is made once for the whole cluster.
type RenderPool struct {
	deps   RenderDeps
	jobs   chan renderJob
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	total  *prometheus.CounterVec
}

// renderJob is one render to make; done is called once with its outcome.
type renderJob struct {
	productID, imageID string
	key                string
	render             catalog.Render
	focus              *catalog.FocalPoint
	done               func(error)
}

// NewRenderPool starts a node's render workers.
func NewRenderPool(deps RenderDeps) *RenderPool {
	if deps.Workers <= 0 {
		deps.Workers = 1
	}
	if deps.Queue <= 0 {
		deps.Queue = 16
	}
	if deps.Timeout <= 0 {
		deps.Timeout = 30 * time.Second
	}
	if deps.Widths.Step <= 0 || deps.Widths.Max <= 0 {
		deps.Widths = catalog.DefaultWidths
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	p := &RenderPool{deps: deps, jobs: make(chan renderJob, deps.Queue)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.total = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vitrine_renders_total",
		Help: "Files made on demand by this node's render workers (one libvips run each), by outcome: made, failed, busy (refused: the queue was full)."},
		[]string{"outcome"})
	for _, o := range []string{"made", "failed", "busy"} {
		p.total.WithLabelValues(o)
	}
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(p.total, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "vitrine_render_queue",
			Help: "Renders waiting for one of this node's render workers."}, func() float64 { return float64(len(p.jobs)) }))
	}
	for range deps.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				select {
				case <-p.ctx.Done():
					return
				case j := <-p.jobs:
					j.done(p.run(j))
				}
			}
		}()
	}
	return p
}

// Close stops the workers after their current render; the renders still
// queued end unavailable.
func (p *RenderPool) Close() {
	p.cancel()
	p.wg.Wait()
	for {
		select {
		case j := <-p.jobs:
			j.done(catalog.Unavailable("the render workers", errors.New("the node is shutting down")))
		default:
			return
		}
	}
}

// submit queues j, or reports false when the queue is full.
func (p *RenderPool) submit(j renderJob) bool {
	if p.ctx.Err() != nil {
		return false
	}
	select {
	case p.jobs <- j:
		return true
	default:
		p.total.WithLabelValues("busy").Inc()
		return false
	}
}

// run makes one render and stores it; a worker's panic fails the render,
// not the node.
func (p *RenderPool) run(j renderJob) (err error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.deps.Timeout)
	defer cancel()
	start := time.Now()
	bytes := 0
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("render %s: panic: %v", j.key, r)
		}
		outcome := "made"
		fields := []zap.Field{zap.String("product_id", j.productID), zap.String("image_id", j.imageID), zap.String("key", j.key),
			zap.Duration("duration", time.Since(start))}
		if err != nil {
			outcome = "failed"
			fields = append(fields, zap.Error(err))
		} else {
			fields = append(fields, zap.Int("bytes", bytes))
		}
		p.total.WithLabelValues(outcome).Inc()
		p.deps.Log.Info("render", append(fields, zap.String("outcome", outcome))...)
	}()
	data, err := p.deps.Blobs.Get(ctx, catalog.OriginalKey(j.productID, j.imageID))
	switch {
	case catalog.IsNotFound(err):
		return catalog.NotFound("image %s of product %s has no original", j.imageID, j.productID)
	case err != nil:
		return catalog.Unavailable("the file store", fmt.Errorf("read original of image %s: %w", j.imageID, err))
	}
	out, err := p.deps.Renderer.Render(ctx, data, j.render, j.focus)
	if err != nil {
		return fmt.Errorf("render %s: %w", j.key, err)
	}
	if _, err := p.deps.Blobs.Create(ctx, j.key, out.Data, out.ContentType); err != nil {
		return catalog.Unavailable("the file store", fmt.Errorf("store %s: %w", j.key, err))
	}
	bytes = len(out.Data)
	return nil
}

// removeLater removes a render written for an image that is gone, or whose
// recipe version moved on, while it was made.
func (p *RenderPool) removeLater(key string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := p.deps.Blobs.Delete(ctx, []string{key}); err != nil {
			p.deps.Log.Warn("remove a render of a deleted image; the orphan sweeper will", zap.String("key", key), zap.Error(err))
		}
	}()
}

// renderDone tells a grain a render of its product ended.
type renderDone struct {
	key           string
	imageID       string
	recipeVersion int
	err           error
}

// render answers a RENDER command: the render's key once it is stored.
// The first request for a key submits the render, the others wait for it
// with it; the answers go out when it ends (renderDone).
func (g *productGrain) render(c actor.Context, cmd *actorspb.ProductCommand) {
	fail := func(err error) { c.Respond(&actorspb.ProductReply{Error: toProblem(err)}) }
	pool := g.deps.Renders
	if pool == nil {
		fail(catalog.Errorf(catalog.KindNotFound, "no_renders", "this server makes no file on demand"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.deps.StoreTimeout)
	defer cancel()
	if err := g.load(ctx); err != nil {
		fail(catalog.Unavailable("the database", err))
		return
	}
	var r catalog.Render
	if err := json.Unmarshal(cmd.Body, &r); err != nil {
		fail(catalog.Errorf(catalog.KindInvalid, "invalid_render", "a render request must be a JSON render: %v", err))
		return
	}
	if g.p == nil {
		fail(catalog.NotFound("product %s does not exist", g.id))
		return
	}
	img, ok := g.p.Image(cmd.ImageId)
	if !ok {
		fail(catalog.NotFound("image %s of product %s does not exist", cmd.ImageId, g.id))
		return
	}
	r, key, err := img.RenderTarget(pool.deps.Widths, r)
	if err != nil {
		fail(err)
		return
	}
	if g.renders == nil {
		g.renders = map[string][]*actor.PID{}
	}
	if waiting, ok := g.renders[key]; ok {
		g.renders[key] = append(waiting, c.Sender())
		return
	}
	self, root, version := c.Self(), c.ActorSystem().Root, img.RecipeVersion
	if !pool.submit(renderJob{productID: g.id, imageID: img.ID, key: key, render: r, focus: img.FocalPoint,
		done: func(err error) {
			root.Send(self, &renderDone{key: key, imageID: img.ID, recipeVersion: version, err: err})
		}}) {
		fail(catalog.Errorf(catalog.KindUnavailable, "renders_busy",
			"this server is making as many files on demand as it queues; retry in a moment"))
		return
	}
	g.renders[key] = []*actor.PID{c.Sender()}
}

// rendered answers the requests that waited for a render. A render of an
// image deleted, or reprocessed with a new recipe, while it was made is
// removed: the delete (or the new recipe) removed the image's files before
// this one was written.
func (g *productGrain) rendered(c actor.Context, m *renderDone) {
	waiting := g.renders[m.key]
	delete(g.renders, m.key)
	err := m.err
	if err == nil {
		var img *catalog.Image
		if g.p != nil {
			img, _ = g.p.Image(m.imageID)
		}
		if img == nil || img.RecipeVersion != m.recipeVersion {
			g.deps.Renders.removeLater(m.key)
			err = catalog.NotFound("image %s of product %s does not exist (it changed while a file was made on demand)", m.imageID, g.id)
		}
	}
	var reply *actorspb.ProductReply
	if err != nil {
		var ce *catalog.Error
		if !errors.As(err, &ce) {
			g.deps.Log.Error("render failed", zap.String("product_id", g.id), zap.String("key", m.key), zap.Error(err))
		}
		reply = &actorspb.ProductReply{Error: toProblem(err)}
	} else {
		body, _ := json.Marshal(catalog.RenderResult{Key: m.key}) // a string field: cannot fail
		reply = &actorspb.ProductReply{Body: body}
	}
	for _, to := range waiting {
		if to != nil {
			c.Send(to, reply)
		}
	}
}

// Render asks the grain of the image's product for render r of the image:
// the blob key of the file, stored once it answers. Concurrent requests for
// the same file, from any node, wait on one render. It waits as long as
// ctx allows (a render queues behind others on the owner's workers).
func (s *Service) Render(ctx context.Context, productID, imageID string, r catalog.Render) (catalog.RenderResult, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return catalog.RenderResult{}, fmt.Errorf("encode render: %w", err)
	}
	cmd := &actorspb.ProductCommand{Op: actorspb.ProductCommand_RENDER, ImageId: imageID, Body: body}
	timeout := 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	for attempt := 0; ; attempt++ {
		if timeout <= 0 {
			return catalog.RenderResult{}, catalog.Unavailable("the render workers", context.DeadlineExceeded)
		}
		start := time.Now()
		res, err := s.grains.Request(ctx, productID, ProductKind, cmd, timeout)
		if err != nil {
			// A render is safe to ask for again: its grain moved, or its
			// node went away; the file is made once it is asked of the
			// new owner (or found stored).
			if attempt < 2 && (errors.Is(err, cluster.ErrUnreachable) || errors.Is(err, cluster.ErrInDoubt)) {
				timeout -= time.Since(start)
				continue
			}
			return catalog.RenderResult{}, catalog.Unavailable("the render workers", fmt.Errorf("render of image %s: %w", imageID, err))
		}
		reply, ok := res.(*actorspb.ProductReply)
		if !ok {
			return catalog.RenderResult{}, fmt.Errorf("render of image %s: unexpected reply %T", imageID, res)
		}
		if reply.Error != nil {
			return catalog.RenderResult{}, fromProblem(reply.Error)
		}
		var out catalog.RenderResult
		if err := json.Unmarshal(reply.Body, &out); err != nil {
			return catalog.RenderResult{}, fmt.Errorf("decode render of image %s: %w", imageID, err)
		}
		return out, nil
	}
}
