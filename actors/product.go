// Package actors holds vitrine's actors: one virtual product actor (a
// protoactor cluster grain) per product, which is the only writer of that
// product, and the image supervisor that feeds libvips worker actors.
package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
)

// ProductKind is the cluster kind of product grains.
const ProductKind = "product"

// MaxImagesPerProduct bounds how many images one product may hold.
const MaxImagesPerProduct = catalog.MaxImagesPerProduct

// removeTimeout bounds removing a deleted product's files.
const removeTimeout = 30 * time.Second

// blobRemover is what a product grain needs of the blob store.
type blobRemover interface {
	DeletePrefix(ctx context.Context, prefix string) error
}

// GrainStore is the store as product grains use it: the products, and
// requeueing an image's job with its change.
type GrainStore interface {
	catalog.ProductStore
	// RequeueImage records a change of an existing image and (re)queues
	// its job, due now with its attempts reset, in the same transaction.
	RequeueImage(ctx context.Context, p *catalog.Product, img *catalog.Image) error
}

// ProductDeps are what product grains need.
type ProductDeps struct {
	Store GrainStore
	Cache catalog.Cache
	Blobs blobRemover
	Log   *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// IdleTimeout passivates a grain that received nothing for this long.
	IdleTimeout time.Duration
	// StoreTimeout bounds each store call; default DefaultStoreTimeout.
	StoreTimeout time.Duration
	// Metrics counts activations and passivations; nil: none.
	Metrics *Metrics
	// Tracer continues callers' traces in the grain; nil: off.
	Tracer trace.TracerProvider
	tracer trace.Tracer
	// Owns reports whether this node is where the cluster places the
	// product now; nil: always. A grain whose product moved (a node
	// joined, or a node that is not its owner activated it for a caller
	// with an older view of the membership) answers nothing and stops.
	Owns func(id string) bool
	// Events hears of every change, once it is stored; nil: nobody.
	Events EventSink
	// Renders makes files on demand (RENDER); nil: this node makes none.
	Renders *RenderPool
}

// DefaultStoreTimeout bounds a grain's store call, an upload's count of
// the image backlog and a list's reads: a database that stopped answering
// (a partition that drops packets, on a connection the pool holds open)
// costs a request this long, then a 503 (TestPartitionPostgres, cmd/vitrine).
const DefaultStoreTimeout = 5 * time.Second

// storeDeadline bounds the store calls a request makes outside a grain (an
// upload's backlog count, a list's reads) by DefaultStoreTimeout rather
// than the request's own timeout.
func storeDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, DefaultStoreTimeout)
}

// storeTimedOut is err of a store call made under sctx, storeDeadline's
// context of ctx: when sctx's deadline ran out while the caller still
// waited, the database did not answer in time, a 503 (not a bug, which a
// bare context error would read as).
func storeTimedOut(ctx, sctx context.Context, what string, err error) error {
	var ce *catalog.Error
	if err != nil && sctx.Err() != nil && ctx.Err() == nil && !errors.As(err, &ce) {
		return catalog.Unavailable("the database", fmt.Errorf("%s: %w", what, err))
	}
	return err
}

// NewProductKind returns the cluster kind that activates product grains.
func NewProductKind(deps ProductDeps) *pcluster.Kind {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.IdleTimeout <= 0 {
		deps.IdleTimeout = 10 * time.Minute
	}
	if deps.StoreTimeout <= 0 {
		deps.StoreTimeout = DefaultStoreTimeout
	}
	deps.tracer = tracerOf(deps.Tracer)
	d := &deps
	return pcluster.NewKind(ProductKind, actor.PropsFromProducer(func() actor.Actor {
		return &productGrain{deps: d}
	}))
}

// productGrain owns one product: its state in memory, its rendering, and
// every write to it.
type productGrain struct {
	deps   *ProductDeps
	id     string
	loaded bool
	p      *catalog.Product // nil when the product does not exist
	body   []byte           // rendered p
	// renders are the requests waiting for each render under way, by key.
	renders map[string][]*actor.PID
}

func (g *productGrain) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *pcluster.ClusterInit:
		g.id = m.Identity.Identity
		c.SetReceiveTimeout(g.deps.IdleTimeout)
		g.deps.Metrics.activated()
	case *actor.Stopped:
		g.deps.Metrics.passivated()
	case *actor.ReceiveTimeout:
		c.Poison(c.Self())
	case *renderDone:
		g.rendered(c, m)
	case *actorspb.ProductCommand:
		if g.deps.Owns != nil && !g.deps.Owns(g.id) {
			// Not processed: the caller sees a dead letter, forgets this
			// grain and sends again to the owner. Two live grains of one
			// product would serve different states.
			c.Respond(&actor.DeadLetterResponse{Target: c.Self()})
			c.Poison(c.Self())
			return
		}
		if m.Op == actorspb.ProductCommand_RENDER {
			g.render(c, m)
			return
		}
		c.Respond(g.handle(m))
	}
}

func (g *productGrain) handle(cmd *actorspb.ProductCommand) *actorspb.ProductReply {
	ctx, cancel := context.WithTimeout(traceparent.With(context.Background(), cmd.Traceparent), g.deps.StoreTimeout)
	defer cancel()
	ctx, end := startSpan(ctx, g.deps.tracer, commandSpanName(cmd), trace.WithSpanKind(trace.SpanKindServer))
	var err error
	defer func() { end(&err) }()
	remembered := g.loaded
	reply, err := g.apply(ctx, cmd)
	// Not loaded after the command: the store refused one of its writes
	// for a product that is not as the grain held it (see stored), even
	// when the grain had just loaded it: another grain wrote in between.
	if catalog.IsVersionConflict(err) || (remembered || !g.loaded) && staleRefusal(err) {
		// Another writer won (a second node during a membership change):
		// reload and try once more on fresh state. A refusal decided on
		// the state in memory (an If-Match that does not match, an image
		// or a product that does not exist) is decided again on the
		// stored one: while the nodes' views of the membership disagree,
		// a grain of this product on another node may have written since
		// (TestPartitionNodes), and refusing a client that names the
		// stored version would be wrong, as would telling a worker that
		// an image uploaded through that grain is gone (it drops the job,
		// and the image stays pending for good).
		g.loaded = false
		reply, err = g.apply(ctx, cmd)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		// The store did not answer within StoreTimeout (a database that
		// went silent): not a bug, a 503. A write may have been applied
		// all the same (its commit sent, the answer lost): its outcome is
		// unknown, and the grain reloads before its next command.
		if isRead(cmd) {
			err = catalog.Unavailable("the database", err)
		} else {
			err = outcomeUnknown(cmd.Op, g.id, err)
			g.loaded = false
		}
	}
	if err != nil {
		if catalog.ErrorKind(err) == catalog.KindInternal || catalog.ErrorKind(err) == catalog.KindUnavailable {
			g.deps.Log.Error("product command failed", zap.String("product_id", g.id), zap.Stringer("op", cmd.Op), zap.Error(err))
		}
		reply := &actorspb.ProductReply{Error: toProblem(err)}
		if catalog.ErrorKind(err) == catalog.KindPrecondition && g.p != nil {
			reply.Etag = g.p.ETag() // a client that lost the race learns the current version
		}
		return reply
	}
	return reply
}

// stored is err, the outcome of a store write of the grain's product. A
// write the store refuses because the product is not as the grain holds
// it (gone, or at another version) came after another grain's: while the
// nodes' views of the membership disagree (a node joined and the
// product's old owner has not seen it yet), two nodes may each place the
// product on themselves, and one's grain may load the product just before
// the other's deletes it. The state in memory is then wrong: it is
// forgotten, the grain reloads it before its next command, and handle
// decides this one again on the stored state. Kept, a product the other
// grain deleted would be answered from memory to every read that reaches
// this grain, and every read does (the cache holds the product's
// deletion): a DELETE answered 204, then GET 200 until the grain stops
// (TestGrainForgetsAProductAnotherGrainDeleted).
func (g *productGrain) stored(err error) error {
	if catalog.IsNotFound(err) || catalog.IsVersionConflict(err) {
		g.loaded = false
	}
	return err
}

// staleRefusal reports whether err refuses a command for what the grain
// holds in memory: a precondition or a not-found.
func staleRefusal(err error) bool {
	k := catalog.ErrorKind(err)
	return k == catalog.KindPrecondition || k == catalog.KindNotFound
}

func (g *productGrain) load(ctx context.Context) error {
	if g.loaded {
		return nil
	}
	p, err := g.deps.Store.GetProduct(ctx, g.id)
	switch {
	case catalog.IsNotFound(err):
		g.p, g.body = nil, nil
	case err != nil:
		return fmt.Errorf("load product %s: %w", g.id, err)
	default:
		if err := g.setState(ctx, p); err != nil {
			return err
		}
	}
	g.loaded = true
	return nil
}

// setState makes p the grain's state, renders it and refreshes the cache.
func (g *productGrain) setState(ctx context.Context, p *catalog.Product) error {
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("render product %s: %w", p.ID, err)
	}
	g.p, g.body = p, body
	g.deps.Cache.Set(ctx, p.ID, p.Version, encodeCached(p.ETag(), body))
	return nil
}

func (g *productGrain) reply() *actorspb.ProductReply {
	return &actorspb.ProductReply{Body: g.body, Etag: g.p.ETag()}
}

func (g *productGrain) apply(ctx context.Context, cmd *actorspb.ProductCommand) (*actorspb.ProductReply, error) {
	fresh := !g.loaded // loading puts the product in the cache
	if err := g.load(ctx); err != nil {
		return nil, err
	}
	if cmd.Op == actorspb.ProductCommand_CREATE {
		return g.create(ctx, cmd.Body, cmd.Owner)
	}
	if g.p == nil {
		return nil, catalog.NotFound("product %s does not exist", g.id)
	}
	if cmd.Owner != 0 && g.p.UserID != cmd.Owner && !isRead(cmd) {
		return nil, catalog.Forbidden("product %s belongs to another owner; this key may change only the products of user_id %d", g.id, cmd.Owner)
	}
	if cmd.IfMatch != "" && !etagMatches(cmd.IfMatch, g.p.ETag()) {
		return nil, &catalog.Error{Kind: catalog.KindPrecondition, Code: "precondition_failed",
			Detail: fmt.Sprintf("If-Match %s does not match the current ETag %s; fetch the product again", cmd.IfMatch, g.p.ETag())}
	}
	switch cmd.Op {
	case actorspb.ProductCommand_GET:
		// A GET reaches the grain only when the cache missed (the entry
		// expired or was evicted): put it back, so the next reads are hot.
		if !fresh {
			g.deps.Cache.Set(ctx, g.id, g.p.Version, encodeCached(g.p.ETag(), g.body))
		}
		return g.reply(), nil
	case actorspb.ProductCommand_REPLACE:
		var in catalog.ProductInput
		if err := json.Unmarshal(cmd.Body, &in); err != nil {
			return nil, fmt.Errorf("decode input: %w", err)
		}
		return g.update(ctx, in, cmd.Owner)
	case actorspb.ProductCommand_PATCH:
		current, err := json.Marshal(g.p.Input())
		if err != nil {
			return nil, err
		}
		merged, err := catalog.MergePatch(current, cmd.Body)
		if err != nil {
			return nil, err
		}
		in, err := catalog.ParseProductInput(merged)
		if err != nil {
			return nil, err
		}
		return g.update(ctx, in, cmd.Owner)
	case actorspb.ProductCommand_DELETE:
		return g.delete(ctx)
	case actorspb.ProductCommand_ADD_IMAGE:
		return g.addImage(ctx, cmd.Body)
	case actorspb.ProductCommand_SAVE_IMAGE:
		return g.saveImage(ctx, cmd.Body)
	case actorspb.ProductCommand_REPROCESS:
		return g.reprocess(ctx, cmd.ImageId, cmd.Force)
	case actorspb.ProductCommand_DELETE_IMAGE:
		return g.deleteImage(ctx, cmd.ImageId)
	case actorspb.ProductCommand_PATCH_IMAGE:
		return g.patchImage(ctx, cmd.ImageId, cmd.Body)
	case actorspb.ProductCommand_ORDER_IMAGES:
		return g.orderImages(ctx, cmd.Body)
	case actorspb.ProductCommand_GET_IMAGE:
		img, ok := g.p.Image(cmd.ImageId)
		if !ok {
			return nil, catalog.NotFound("image %s of product %s does not exist", cmd.ImageId, g.id)
		}
		return imageReply(img)
	default:
		return nil, fmt.Errorf("unknown product command %v", cmd.Op)
	}
}

func (g *productGrain) create(ctx context.Context, body []byte, owner int64) (*actorspb.ProductReply, error) {
	if g.p != nil {
		return nil, catalog.Errorf(catalog.KindConflict, "already_exists", "product %s already exists", g.id)
	}
	var in catalog.ProductInput
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("decode input: %w", err)
	}
	if err := ownedBy(in, owner); err != nil {
		return nil, err
	}
	now := g.deps.Now().UTC().Truncate(time.Microsecond)
	p := &catalog.Product{ID: g.id, CreatedAt: now, UpdatedAt: now, Version: 1, Images: []catalog.Image{}}
	p.Apply(in)
	if err := g.stored(g.deps.Store.CreateProduct(ctx, p)); err != nil {
		return nil, fmt.Errorf("create product %s: %w", g.id, err)
	}
	if err := g.setState(ctx, p); err != nil {
		return nil, err
	}
	g.emitProduct(ctx, catalog.EventProductCreated)
	return g.reply(), nil
}

// next returns a copy of the state with the version bumped.
func (g *productGrain) next() *catalog.Product {
	n := *g.p
	n.Images = append([]catalog.Image(nil), g.p.Images...)
	n.Version++
	n.UpdatedAt = g.deps.Now().UTC().Truncate(time.Microsecond)
	return &n
}

// ownedBy refuses input that would give a product to anyone but owner (0:
// any owner is fine).
func ownedBy(in catalog.ProductInput, owner int64) error {
	if owner != 0 && in.UserID != owner {
		return catalog.Forbidden("this key may write only the products of user_id %d, not of user_id %d", owner, in.UserID)
	}
	return nil
}

func (g *productGrain) update(ctx context.Context, in catalog.ProductInput, owner int64) (*actorspb.ProductReply, error) {
	if err := ownedBy(in, owner); err != nil {
		return nil, err
	}
	if in == g.p.Input() {
		return g.reply(), nil // nothing changes: keep the version and the ETag
	}
	n := g.next()
	n.Apply(in)
	if err := g.stored(g.deps.Store.UpdateProduct(ctx, n)); err != nil {
		return nil, fmt.Errorf("update product %s: %w", g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	g.emitProduct(ctx, catalog.EventProductUpdated)
	return g.reply(), nil
}

func (g *productGrain) delete(ctx context.Context) (*actorspb.ProductReply, error) {
	if err := g.stored(g.deps.Store.DeleteProduct(ctx, g.id)); err != nil {
		return nil, fmt.Errorf("delete product %s: %w", g.id, err)
	}
	version := g.p.Version
	g.p, g.body = nil, nil
	g.deps.Cache.Delete(ctx, g.id, version)
	g.removeFiles(ctx)
	g.emitDeleted(ctx, version)
	return &actorspb.ProductReply{}, nil
}

// removeFiles removes the files of the deleted product before the delete
// answers, under a deadline of its own (a product may hold many files).
// The database no longer knows them, so a removal that fails is logged,
// never a reason to fail a delete that happened: the orphan sweeper
// removes what is left. Files a running job writes afterwards, the job
// removes itself.
func (g *productGrain) removeFiles(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	if err := g.deps.Blobs.DeletePrefix(ctx, catalog.ProductPrefix(g.id)); err != nil {
		g.deps.Log.Error("delete product files; the orphan sweeper will", zap.String("product_id", g.id), zap.Error(err))
	}
}

func (g *productGrain) addImage(ctx context.Context, body []byte) (*actorspb.ProductReply, error) {
	var img catalog.Image
	if err := json.Unmarshal(body, &img); err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	if _, exists := g.p.Image(img.ID); exists {
		return nil, catalog.Errorf(catalog.KindConflict, "already_exists", "image %s already exists", img.ID)
	}
	if img.Original.SHA256 != "" {
		for i := range g.p.Images {
			prev := &g.p.Images[i]
			if prev.Original.SHA256 == img.Original.SHA256 && prev.Status != catalog.StatusFailed {
				reply, err := imageReply(prev)
				if reply != nil {
					reply.Existing = true
				}
				return reply, err
			}
		}
	}
	if len(g.p.Images) >= MaxImagesPerProduct {
		return nil, catalog.Errorf(catalog.KindConflict, "too_many_images", "product %s already has %d images, the most it may hold; delete some first", g.id, MaxImagesPerProduct)
	}
	img.ProductID, img.Position = g.id, len(g.p.Images)
	n := g.next()
	n.Images = append(n.Images, img)
	octx, end := startSpan(ctx, g.deps.tracer, "outbox: image and job")
	err := g.stored(g.deps.Store.AddImage(octx, n, &img))
	end(&err)
	if err != nil {
		return nil, fmt.Errorf("add image %s to product %s: %w", img.ID, g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	g.emitImage(ctx, &img)
	return imageReply(&img)
}

func (g *productGrain) saveImage(ctx context.Context, body []byte) (*actorspb.ProductReply, error) {
	var img catalog.Image
	if err := json.Unmarshal(body, &img); err != nil {
		return nil, fmt.Errorf("decode image: %w", err)
	}
	n := g.next()
	i := -1
	for j := range n.Images {
		if n.Images[j].ID == img.ID {
			i = j
		}
	}
	if i < 0 {
		return nil, catalog.NotFound("image %s of product %s does not exist", img.ID, g.id)
	}
	img.ProductID, img.CreatedAt, img.SourceURL = g.id, n.Images[i].CreatedAt, n.Images[i].SourceURL
	// The gallery fields are the grain's, not the worker's copy's.
	img.Position, img.Alt, img.FocalPoint = n.Images[i].Position, n.Images[i].Alt, n.Images[i].FocalPoint
	if n.Images[i].Original.SHA256 != "" { // the original is fixed once known
		img.Original = n.Images[i].Original
	}
	if sameImage(&n.Images[i], &img) {
		// Delivered again (a retry whose first delivery was applied):
		// nothing changes, the version stays.
		return imageReply(&img)
	}
	// A ready image whose last slow formats were just recorded: the
	// formats' event, not a second image.ready.
	formatsLanded := n.Images[i].Status == catalog.StatusReady && n.Images[i].PendingFiles() &&
		img.Status == catalog.StatusReady && !img.PendingFiles()
	n.Images[i] = img
	if err := g.stored(g.deps.Store.SaveImage(ctx, n, &img)); err != nil {
		return nil, fmt.Errorf("save image %s of product %s: %w", img.ID, g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	if formatsLanded {
		g.emit(ctx, catalog.EventImageFormatsReady, img.ID, g.p.Version, g.p.UpdatedAt, &img)
	} else {
		g.emitImage(ctx, &img)
	}
	return imageReply(&img)
}

// reprocess puts an image back to pending, keeping its variants (they serve
// until new ones replace them), and queues its job in the same transaction.
// A failure that trying again cannot mend is refused unless forced.
func (g *productGrain) reprocess(ctx context.Context, imageID string, force bool) (*actorspb.ProductReply, error) {
	n := g.next()
	var img *catalog.Image
	for j := range n.Images {
		if n.Images[j].ID == imageID {
			img = &n.Images[j]
		}
	}
	if img == nil {
		return nil, catalog.NotFound("image %s of product %s does not exist", imageID, g.id)
	}
	if img.Status == catalog.StatusPending || img.Status == catalog.StatusProcessing {
		return imageReply(img) // already on its way
	}
	if img.Original.SHA256 == "" && img.SourceURL == "" {
		return nil, catalog.Errorf(catalog.KindConflict, "no_original", "image %s has no original to process", imageID)
	}
	if img.Status == catalog.StatusFailed && img.Error != nil && !img.Error.Retryable && !force {
		return nil, catalog.Errorf(catalog.KindConflict, "not_retryable",
			"image %s failed with %s (%s): processing it again would fail the same way; delete it and upload another file", imageID, img.Error.Code, img.Error.Detail)
	}
	img.Status, img.Error = catalog.StatusPending, nil
	if err := g.stored(g.deps.Store.RequeueImage(ctx, n, img)); err != nil {
		return nil, fmt.Errorf("requeue image %s of product %s: %w", imageID, g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	g.emitImage(ctx, img)
	return imageReply(img)
}

// sameImage compares two images by their documents.
func sameImage(a, b *catalog.Image) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

func imageReply(img *catalog.Image) (*actorspb.ProductReply, error) {
	body, err := json.Marshal(img)
	if err != nil {
		return nil, fmt.Errorf("render image %s: %w", img.ID, err)
	}
	return &actorspb.ProductReply{Body: body}, nil
}

// etagMatches implements If-Match: "*" or any listed tag equal to current.
func etagMatches(header, current string) bool {
	for _, tag := range splitTags(header) {
		if tag == "*" || tag == current {
			return true
		}
	}
	return false
}
