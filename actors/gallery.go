package actors

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
	"github.com/vitrine-dev/vitrine/catalog"
)

// The gallery: a product grain removes, moves and captions its product's
// images. Each change is one store transaction that bumps the product's
// version, then one event.

// imageIndex is the place of the image in the grain's product, -1 when it
// has none of that id.
func (g *productGrain) imageIndex(imageID string) int {
	return slices.IndexFunc(g.p.Images, func(img catalog.Image) bool { return img.ID == imageID })
}

// deleteImage removes an image, its job and its files. A job of it that is
// running finds the image gone when it records its outcome, and removes
// what it wrote since (worker.deleted), as after a product's delete.
func (g *productGrain) deleteImage(ctx context.Context, imageID string) (*actorspb.ProductReply, error) {
	i := g.imageIndex(imageID)
	if i < 0 {
		return nil, catalog.NotFound("image %s of product %s does not exist", imageID, g.id)
	}
	n := g.next()
	n.Images = slices.Delete(n.Images, i, i+1)
	catalog.Renumber(n.Images)
	if err := g.stored(g.deps.Store.DeleteImage(ctx, n, imageID)); err != nil {
		return nil, fmt.Errorf("delete image %s of product %s: %w", imageID, g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	g.removeImageFiles(ctx, imageID)
	g.emit(ctx, catalog.EventImageDeleted, imageID, n.Version, n.UpdatedAt, map[string]string{"id": imageID, "product_id": g.id})
	return &actorspb.ProductReply{Etag: n.ETag()}, nil
}

// removeImageFiles removes a deleted image's files before the delete
// answers, as removeFiles does for a product.
func (g *productGrain) removeImageFiles(ctx context.Context, imageID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
	defer cancel()
	if err := g.deps.Blobs.DeletePrefix(ctx, catalog.ImagePrefix(g.id, imageID)); err != nil {
		g.deps.Log.Error("delete image files; the orphan sweeper will", zap.String("product_id", g.id), zap.String("image_id", imageID), zap.Error(err))
	}
}

// patchImage changes an image's alt text, its focal point or its place in
// the gallery. A patch that changes nothing keeps the version.
func (g *productGrain) patchImage(ctx context.Context, imageID string, body []byte) (*actorspb.ProductReply, error) {
	i := g.imageIndex(imageID)
	if i < 0 {
		return nil, catalog.NotFound("image %s of product %s does not exist", imageID, g.id)
	}
	patch, err := catalog.ParseImagePatch(body, len(g.p.Images))
	if err != nil {
		return nil, err
	}
	cur := &g.p.Images[i]
	alt, focus, to := cur.Alt, cur.FocalPoint, i
	if patch.Alt != nil {
		alt = *patch.Alt
	}
	if patch.SetFocus {
		focus = patch.FocalPoint
	}
	if patch.Position != nil {
		to = *patch.Position
	}
	refocus := !catalog.SameFocus(focus, cur.FocalPoint)
	if alt == cur.Alt && !refocus && to == i {
		return g.imageReplyOf(i)
	}
	n := g.next()
	n.Images[i].Alt = alt
	var requeue []string
	if refocus {
		n.Images[i].FocalPoint = focus
		// Crops are made again around the new point (the old ones serve
		// meanwhile) unless the image failed; a job under way starts over.
		if cur.Status != catalog.StatusFailed {
			requeue = []string{imageID}
		}
	}
	n.Images = catalog.Move(n.Images, i, to)
	if err := g.stored(g.deps.Store.SaveGallery(ctx, n, requeue)); err != nil {
		return nil, fmt.Errorf("save the gallery of product %s: %w", g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	g.emit(ctx, catalog.EventImageUpdated, imageID, n.Version, n.UpdatedAt, &n.Images[to])
	return g.imageReplyOf(to)
}

// orderImages puts the gallery in the order of the image ids of body,
// which must name every image once.
func (g *productGrain) orderImages(ctx context.Context, body []byte) (*actorspb.ProductReply, error) {
	ids, err := catalog.ParseImageOrder(body, g.p.Images)
	if err != nil {
		return nil, err
	}
	if slices.EqualFunc(ids, g.p.Images, func(id string, img catalog.Image) bool { return id == img.ID }) {
		return g.reply(), nil
	}
	n := g.next()
	for j, id := range ids {
		n.Images[j] = g.p.Images[g.imageIndex(id)]
	}
	catalog.Renumber(n.Images)
	if err := g.stored(g.deps.Store.SaveGallery(ctx, n, nil)); err != nil {
		return nil, fmt.Errorf("save the gallery of product %s: %w", g.id, err)
	}
	if err := g.setState(ctx, n); err != nil {
		return nil, err
	}
	g.emit(ctx, catalog.EventImagesReordered, "", n.Version, n.UpdatedAt, map[string][]string{"image_ids": ids})
	return g.reply(), nil
}

// imageReplyOf answers with the image at index i and the product's ETag.
func (g *productGrain) imageReplyOf(i int) (*actorspb.ProductReply, error) {
	reply, err := imageReply(&g.p.Images[i])
	if err != nil {
		return nil, err
	}
	reply.Etag = g.p.ETag()
	return reply, nil
}
