package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/cluster"
	"github.com/vitrine-dev/vitrine/internal/traceparent"
)

// productReader is what the service reads directly, bypassing grains: lists
// span many products, and a product whose grain's node went away is read
// from the store while the grain is placed again.
type productReader interface {
	ListProductIDs(ctx context.Context, f catalog.ProductFilter) ([]string, error)
	GetProducts(ctx context.Context, ids []string) ([]*catalog.Product, error)
	GetProduct(ctx context.Context, id string) (*catalog.Product, error)
}

// Grains sends commands to product grains wherever they live. Its errors
// wrap cluster.ErrUnreachable (the command was not delivered) or
// cluster.ErrInDoubt (the grain's node went away during the command).
type Grains interface {
	Request(ctx context.Context, identity, kind string, msg any, timeout time.Duration) (any, error)
	// Owns reports whether identity's grain is placed on this node.
	Owns(identity, kind string) bool
}

// Failover bounds how long a command waits for its grain to be placed on
// another node after its node died or left. It is longer than it takes
// the membership to drop a dead node (etcd: its 3 s lease; static: a poll
// every 2 s).
const Failover = 5 * time.Second

// Service is the front door's view of products: it validates input, answers
// hot reads from the cache, and sends every write to the product's grain.
type Service struct {
	grains  Grains
	cache   catalog.Cache
	reader  productReader
	newID   func() string
	timeout time.Duration
	metrics *Metrics
}

// NewService returns a Service over a started cluster member; metrics may
// be nil.
func NewService(grains Grains, cache catalog.Cache, reader productReader, newID func() string, timeout time.Duration, metrics *Metrics) *Service {
	return &Service{grains: grains, cache: cache, reader: reader, newID: newID, timeout: timeout, metrics: metrics}
}

// Product is a rendered product and its ETag.
type Product struct {
	ID   string
	ETag string
	Body []byte
	// Source says where Get found it: SourceCache, SourceGrain,
	// SourceRemoteGrain or SourceStore ("" for writes).
	Source string
}

// Where a read was answered from.
const (
	SourceCache       = "cache"        // this node's cache: no actor hop
	SourceGrain       = "grain"        // the product's grain, on this node
	SourceRemoteGrain = "remote-grain" // the product's grain, on another node
	SourceStore       = "store"        // the database, while the grain's node is gone
)

// resendable reports whether cmd may be sent again when it is not known
// whether its first delivery was applied: applying it twice, even with
// another client's write in between, must change nothing more than
// applying it once.
func resendable(cmd *actorspb.ProductCommand) bool {
	switch cmd.Op {
	case actorspb.ProductCommand_CREATE, actorspb.ProductCommand_ADD_IMAGE:
		return true // the id is chosen before the first attempt: a second one finds it
	case actorspb.ProductCommand_DELETE, actorspb.ProductCommand_SAVE_IMAGE, actorspb.ProductCommand_REPROCESS,
		actorspb.ProductCommand_DELETE_IMAGE:
		return true // the same outcome however often applied
	case actorspb.ProductCommand_REPLACE, actorspb.ProductCommand_PATCH, actorspb.ProductCommand_PATCH_IMAGE,
		actorspb.ProductCommand_ORDER_IMAGES:
		// Never: without If-Match, another client's write made since the
		// first delivery would be overwritten by the second, which that
		// client was never told about; with If-Match the second attempt
		// would see the first's new ETag and answer 412. The client is
		// told the outcome is unknown, reads, and decides.
		return false
	}
	return false
}

// ErrOutcomeUnknown is wrapped by the error of a write that may have been
// applied although it failed: a delivery of it was lost in flight (its
// grain's node went away, or did not answer in time) and no later answer
// settled it. Whoever prepared for the write must not undo that (an
// upload's original may be what the recorded image's job reads), and the
// client should read before it writes again.
var ErrOutcomeUnknown = errors.New("the write may or may not have been applied")

// outcomeUnknown is the error of a write op on product id whose outcome
// is not known, cause being why: 503, and a problem that says so, so
// that the client reads the product before it decides to write again.
func outcomeUnknown(op actorspb.ProductCommand_Op, id string, cause error) *catalog.Error {
	return &catalog.Error{Kind: catalog.KindUnavailable, Code: "outcome_unknown",
		Detail: fmt.Sprintf("the %s of product %s may or may not have been applied (its answer was lost: the product actor's, or the database's); read the product before you try again",
			opName(op), id),
		Err: fmt.Errorf("%w: %v product %s: %w", ErrOutcomeUnknown, op, id, cause)}
}

// opName is how a problem names a command.
func opName(op actorspb.ProductCommand_Op) string {
	return strings.ToLower(strings.ReplaceAll(op.String(), "_", " "))
}

func isRead(cmd *actorspb.ProductCommand) bool {
	return cmd.Op == actorspb.ProductCommand_GET || cmd.Op == actorspb.ProductCommand_GET_IMAGE
}

// send delivers cmd to the product's grain. When the grain's node is gone,
// a read is answered from the store at once, and a write is sent again
// to the grain's new place when that is safe (see resendable), within
// Failover; otherwise the answer is Unavailable (503 with Retry-After), at
// once. No command waits on a dead node.
func (s *Service) send(ctx context.Context, id string, cmd *actorspb.ProductCommand) (*actorspb.ProductReply, error) {
	reply, _, err := s.deliver(ctx, id, cmd)
	return reply, err
}

// deliver is send, and says whether a read was answered from the store.
func (s *Service) deliver(ctx context.Context, id string, cmd *actorspb.ProductCommand) (reply *actorspb.ProductReply, fromStore bool, err error) {
	deadline := time.Now().Add(Failover)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	retried, movedOnce := false, false
	// maybeApplied: a delivery of the write was lost in flight (it may
	// have been applied). A failure from then on is not a refusal: it is
	// an outcome unknown, which callers must not undo nor clients retry
	// blindly.
	maybeApplied := false
	failed := func(err error) error {
		if maybeApplied {
			return outcomeUnknown(cmd.Op, id, err)
		}
		return catalog.Unavailable("the product actor", err)
	}
	pause := 50 * time.Millisecond
	for {
		timeout := s.timeout
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
			timeout = time.Until(dl)
		}
		if timeout <= 0 {
			return nil, false, failed(fmt.Errorf("%v product %s: %w", cmd.Op, id, context.DeadlineExceeded))
		}
		s.metrics.request(s.grains.Owns(id, ProductKind))
		cmd.Traceparent = traceparent.Of(ctx)
		res, err := s.grains.Request(ctx, id, ProductKind, cmd, timeout)
		if err == nil {
			reply, ok := res.(*actorspb.ProductReply)
			if !ok {
				return nil, false, fmt.Errorf("%v product %s: unexpected reply %T", cmd.Op, id, res)
			}
			if reply.Error != nil {
				if retried {
					reply, err := s.afterResend(ctx, id, cmd, reply)
					return reply, false, err
				}
				if reply.Etag != "" {
					return nil, false, &StaleError{Err: fromProblem(reply.Error), ETag: reply.Etag}
				}
				return nil, false, fromProblem(reply.Error)
			}
			return reply, false, nil
		}
		inDoubt := errors.Is(err, cluster.ErrInDoubt)
		if !isRead(cmd) && !errors.Is(err, cluster.ErrUnreachable) {
			maybeApplied = true // only ErrUnreachable says it was not delivered
		}
		if !inDoubt && !errors.Is(err, cluster.ErrUnreachable) {
			return nil, false, failed(fmt.Errorf("%v product %s: %w", cmd.Op, id, err))
		}
		if isRead(cmd) {
			if errors.Is(err, cluster.ErrMoved) && !movedOnce {
				// The grain is where it belongs at the next request, and
				// puts the product back in the cache.
				movedOnce = true
				continue
			}
			reply, err := s.readStore(ctx, id, cmd)
			return reply, err == nil, err
		}
		if inDoubt && !resendable(cmd) {
			return nil, false, failed(err)
		}
		retried = retried || inDoubt
		if time.Now().Add(pause).After(deadline) {
			return nil, false, failed(fmt.Errorf("%v product %s: %w", cmd.Op, id, err))
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, false, failed(fmt.Errorf("%v product %s: %w", cmd.Op, id, ctx.Err()))
		}
		// A doubling pause within the request's deadline, between the
		// in-doubt decisions above: plainer here than a BackOff object.
		pause = min(2*pause, 400*time.Millisecond)
	}
}

// StaleError is a write refused because its If-Match named another version
// of the product; ETag is the current one.
type StaleError struct {
	Err  *catalog.Error
	ETag string
}

func (e *StaleError) Error() string { return e.Err.Error() }
func (e *StaleError) Unwrap() error { return e.Err }

// afterResend reads the answer to a command sent a second time, when its
// first delivery may have been applied: the error that the first
// delivery's success causes is that success.
func (s *Service) afterResend(ctx context.Context, id string, cmd *actorspb.ProductCommand, reply *actorspb.ProductReply) (*actorspb.ProductReply, error) {
	e := fromProblem(reply.Error)
	switch {
	case cmd.Op == actorspb.ProductCommand_CREATE && e.Code == "already_exists":
		return s.send(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_GET})
	case cmd.Op == actorspb.ProductCommand_ADD_IMAGE && e.Code == "already_exists":
		var img catalog.Image
		if err := json.Unmarshal(cmd.Body, &img); err != nil {
			return nil, fmt.Errorf("decode image: %w", err)
		}
		return s.send(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_GET_IMAGE, ImageId: img.ID})
	case cmd.Op == actorspb.ProductCommand_DELETE && e.Kind == catalog.KindNotFound:
		return &actorspb.ProductReply{}, nil
	case cmd.Op == actorspb.ProductCommand_DELETE_IMAGE && e.Kind == catalog.KindNotFound && e.Code == "not_found":
		return s.send(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_GET})
	}
	return nil, e
}

// readStore answers a read from the store, as the grain would have.
func (s *Service) readStore(ctx context.Context, id string, cmd *actorspb.ProductCommand) (*actorspb.ProductReply, error) {
	p, err := s.reader.GetProduct(ctx, id)
	if catalog.IsNotFound(err) {
		return nil, catalog.NotFound("product %s does not exist", id)
	}
	if err != nil {
		return nil, catalog.Unavailable("the database", fmt.Errorf("read product %s: %w", id, err))
	}
	if cmd.Op == actorspb.ProductCommand_GET_IMAGE {
		img, ok := p.Image(cmd.ImageId)
		if !ok {
			return nil, catalog.NotFound("image %s of product %s does not exist", cmd.ImageId, id)
		}
		return imageReply(img)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("render product %s: %w", id, err)
	}
	return &actorspb.ProductReply{Body: body, Etag: p.ETag()}, nil
}

// Get returns a product, from the cache when it is there.
func (s *Service) Get(ctx context.Context, id string) (Product, error) {
	if !catalog.ValidID(id) {
		return Product{}, catalog.NotFound("product %q does not exist", id)
	}
	if v, ok := s.cache.Get(ctx, id); ok {
		if etag, body, ok := decodeCached(v); ok {
			s.metrics.read(SourceCache)
			return Product{ID: id, ETag: etag, Body: body, Source: SourceCache}, nil
		}
	}
	source := SourceRemoteGrain
	if s.grains.Owns(id, ProductKind) {
		source = SourceGrain
	}
	reply, fromStore, err := s.deliver(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_GET})
	if err != nil {
		return Product{}, err
	}
	if fromStore {
		source = SourceStore
	}
	s.metrics.read(source)
	return Product{ID: id, ETag: reply.Etag, Body: reply.Body, Source: source}, nil
}

// normalized validates a product document and returns the grain's form of it.
func normalized(doc []byte) ([]byte, error) {
	in, err := catalog.ParseProductInput(doc)
	if err != nil {
		return nil, err
	}
	return json.Marshal(in)
}

// Every write takes an owner: when not 0, the write may touch only the
// products of that user_id (the caller's API key is bound to it), and a
// document without user_id gets it.

// Create validates a product document and creates the product.
func (s *Service) Create(ctx context.Context, doc []byte, owner int64) (Product, error) {
	body, err := normalized(defaultOwner(doc, owner))
	if err != nil {
		return Product{}, err
	}
	return s.write(ctx, s.newID(), &actorspb.ProductCommand{Op: actorspb.ProductCommand_CREATE, Body: body, Owner: owner})
}

// Replace validates a product document and replaces the product's fields.
func (s *Service) Replace(ctx context.Context, id string, doc []byte, ifMatch string, owner int64) (Product, error) {
	if !catalog.ValidID(id) {
		return Product{}, catalog.NotFound("product %q does not exist", id)
	}
	body, err := normalized(defaultOwner(doc, owner))
	if err != nil {
		return Product{}, err
	}
	return s.write(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_REPLACE, Body: body, IfMatch: ifMatch, Owner: owner})
}

// Patch applies an RFC 7396 merge patch to the product.
func (s *Service) Patch(ctx context.Context, id string, patch []byte, ifMatch string, owner int64) (Product, error) {
	if !catalog.ValidID(id) {
		return Product{}, catalog.NotFound("product %q does not exist", id)
	}
	if !json.Valid(patch) {
		_, err := catalog.MergePatch([]byte(`{}`), patch)
		return Product{}, err
	}
	if err := catalog.CheckProductPatch(patch); err != nil {
		return Product{}, err
	}
	return s.write(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_PATCH, Body: patch, IfMatch: ifMatch, Owner: owner})
}

// Delete removes the product, its images and their files.
func (s *Service) Delete(ctx context.Context, id string, ifMatch string, owner int64) error {
	if !catalog.ValidID(id) {
		return catalog.NotFound("product %q does not exist", id)
	}
	_, err := s.send(ctx, id, &actorspb.ProductCommand{Op: actorspb.ProductCommand_DELETE, IfMatch: ifMatch, Owner: owner})
	return err
}

// defaultOwner gives a product document without user_id the owner's (when
// there is one); anything else is left for validation to judge.
func defaultOwner(doc []byte, owner int64) []byte {
	if owner == 0 {
		return doc
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return doc
	}
	if v, ok := m["user_id"]; ok && string(v) != "null" {
		return doc
	}
	m["user_id"] = json.RawMessage(strconv.FormatInt(owner, 10))
	out, err := json.Marshal(m)
	if err != nil {
		return doc
	}
	return out
}

func (s *Service) write(ctx context.Context, id string, cmd *actorspb.ProductCommand) (Product, error) {
	reply, err := s.send(ctx, id, cmd)
	if err != nil {
		return Product{}, err
	}
	return Product{ID: id, ETag: reply.Etag, Body: reply.Body}, nil
}

// List returns a page of products, rendered as GET returns them: the
// page's ids from the store (its indexes only), each product from the hot
// cache, and the products the cache lacks in one read of the store,
// rendered here. Those are not put in the cache: only a product's grain
// writes it, so that it never holds a version older than one it has seen.
// A product deleted since the ids were read is left out. Its store reads
// answer within DefaultStoreTimeout, or the list is unavailable.
func (s *Service) List(ctx context.Context, f catalog.ProductFilter) ([]Product, error) {
	sctx, cancel := storeDeadline(ctx)
	defer cancel()
	ids, err := s.reader.ListProductIDs(sctx, f)
	if err != nil {
		return nil, storeTimedOut(ctx, sctx, "list products", err)
	}
	out := make([]Product, len(ids))
	var missing []string
	for i, id := range ids {
		out[i].ID = id
		if v, ok := s.cache.Get(ctx, id); ok {
			if etag, body, ok := decodeCached(v); ok {
				out[i].ETag, out[i].Body = etag, body
				continue
			}
		}
		missing = append(missing, id)
	}
	if len(missing) > 0 {
		ps, err := s.reader.GetProducts(sctx, missing)
		if err != nil {
			return nil, storeTimedOut(ctx, sctx, "read products", err)
		}
		byID := make(map[string]*catalog.Product, len(ps))
		for _, p := range ps {
			byID[p.ID] = p
		}
		for i := range out {
			if out[i].Body != nil {
				continue
			}
			if p := byID[out[i].ID]; p != nil {
				body, err := json.Marshal(p)
				if err != nil {
					return nil, fmt.Errorf("render product %s: %w", p.ID, err)
				}
				out[i].ETag, out[i].Body = p.ETag(), body
			}
		}
	}
	page := out[:0]
	for _, p := range out {
		if p.Body != nil {
			page = append(page, p)
		}
	}
	return page, nil
}

// AddImage records a new pending image of a product and queues its job.
// When the product already has an image of the same bytes (not failed),
// that image is returned instead, with existing set.
func (s *Service) AddImage(ctx context.Context, img *catalog.Image, owner int64) (body []byte, existing bool, err error) {
	doc, err := json.Marshal(img)
	if err != nil {
		return nil, false, err
	}
	reply, err := s.send(ctx, img.ProductID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_ADD_IMAGE, Body: doc, Owner: owner})
	if err != nil {
		return nil, false, err
	}
	return reply.Body, reply.Existing, nil
}

// Reprocess puts an image back to pending (its variants keep serving) and
// queues its job again. A failure that is not retryable is refused.
func (s *Service) Reprocess(ctx context.Context, productID, imageID string, owner int64) ([]byte, error) {
	return s.reprocess(ctx, productID, imageID, owner, false)
}

// reprocess is Reprocess; force runs even a failure that is not retryable.
func (s *Service) reprocess(ctx context.Context, productID, imageID string, owner int64, force bool) ([]byte, error) {
	if !catalog.ValidID(productID) || !catalog.ValidID(imageID) {
		return nil, catalog.NotFound("image %q of product %q does not exist", imageID, productID)
	}
	reply, err := s.send(ctx, productID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_REPROCESS, ImageId: imageID, Owner: owner, Force: force})
	if err != nil {
		return nil, err
	}
	return reply.Body, nil
}

// SaveImage records a new status or result of an image.
func (s *Service) SaveImage(ctx context.Context, img *catalog.Image) error {
	body, err := json.Marshal(img)
	if err != nil {
		return err
	}
	_, err = s.send(ctx, img.ProductID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_SAVE_IMAGE, Body: body})
	return err
}

// Image returns one image of a product.
func (s *Service) Image(ctx context.Context, productID, imageID string) (*catalog.Image, []byte, error) {
	if !catalog.ValidID(productID) || !catalog.ValidID(imageID) {
		return nil, nil, catalog.NotFound("image %q of product %q does not exist", imageID, productID)
	}
	reply, err := s.send(ctx, productID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_GET_IMAGE, ImageId: imageID})
	if err != nil {
		return nil, nil, err
	}
	var img catalog.Image
	if err := json.Unmarshal(reply.Body, &img); err != nil {
		return nil, nil, fmt.Errorf("decode image %s: %w", imageID, err)
	}
	return &img, reply.Body, nil
}

// DeleteImage removes an image of a product and its files; it returns the
// product's new ETag. A retry after a delete that happened answers
// NotFound, as a second DELETE does.
func (s *Service) DeleteImage(ctx context.Context, productID, imageID, ifMatch string, owner int64) (string, error) {
	if !catalog.ValidID(productID) || !catalog.ValidID(imageID) {
		return "", catalog.NotFound("image %q of product %q does not exist", imageID, productID)
	}
	reply, err := s.send(ctx, productID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_DELETE_IMAGE, ImageId: imageID, IfMatch: ifMatch, Owner: owner})
	if err != nil {
		return "", err
	}
	return reply.Etag, nil
}

// PatchImage applies an RFC 7396 merge patch to an image's gallery fields
// (alt, position); it returns the image and the product's ETag.
func (s *Service) PatchImage(ctx context.Context, productID, imageID string, patch []byte, ifMatch string, owner int64) ([]byte, string, error) {
	if !catalog.ValidID(productID) || !catalog.ValidID(imageID) {
		return nil, "", catalog.NotFound("image %q of product %q does not exist", imageID, productID)
	}
	if !json.Valid(patch) {
		_, err := catalog.MergePatch([]byte(`{}`), patch)
		return nil, "", err
	}
	// What needs no gallery to judge is judged before the If-Match is.
	if _, err := catalog.ParseImagePatch(patch, catalog.MaxImagesPerProduct); err != nil && catalog.ErrorKind(err) == catalog.KindInvalid {
		return nil, "", err
	}
	reply, err := s.send(ctx, productID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_PATCH_IMAGE, ImageId: imageID, Body: patch, IfMatch: ifMatch, Owner: owner})
	if err != nil {
		return nil, "", err
	}
	return reply.Body, reply.Etag, nil
}

// OrderImages puts a product's gallery in the order of {"image_ids": [...]}.
func (s *Service) OrderImages(ctx context.Context, productID string, body []byte, ifMatch string, owner int64) (Product, error) {
	if !catalog.ValidID(productID) {
		return Product{}, catalog.NotFound("product %q does not exist", productID)
	}
	if err := catalog.CheckImageOrder(body); err != nil {
		return Product{}, err
	}
	return s.write(ctx, productID, &actorspb.ProductCommand{Op: actorspb.ProductCommand_ORDER_IMAGES, Body: body, IfMatch: ifMatch, Owner: owner})
}
