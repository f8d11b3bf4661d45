package actors

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// EventSink hears of every change a product grain made, once it is stored.
// Emit is called on the grain's turn: it must return quickly (a bounded
// wait for a store, never a webhook's answer).
type EventSink interface {
	Emit(ctx context.Context, e catalog.Event)
}

// productEvent is the data of a product event: the product without its
// images (each image has events of its own), and its ETag.
type productEvent struct {
	ID          string        `json:"id"`
	UserID      int64         `json:"user_id"`
	SKU         string        `json:"sku,omitempty"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Price       catalog.Price `json:"price"`
	Currency    string        `json:"currency"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	Version     int64         `json:"version"`
	ETag        string        `json:"etag"`
}

func productEventOf(p *catalog.Product) productEvent {
	return productEvent{ID: p.ID, UserID: p.UserID, SKU: p.SKU, Name: p.Name, Description: p.Description, Price: p.Price,
		Currency: p.Currency, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, Version: p.Version, ETag: p.ETag()}
}

// emitProduct tells the sink that the grain's product was created or
// changed (the state is already the new one).
func (g *productGrain) emitProduct(ctx context.Context, typ catalog.EventType) {
	g.emit(ctx, typ, "", g.p.Version, g.p.UpdatedAt, productEventOf(g.p))
}

// emitImage tells the sink that an image of the grain's product changed.
func (g *productGrain) emitImage(ctx context.Context, img *catalog.Image) {
	g.emit(ctx, catalog.ImageEvent(img.Status), img.ID, g.p.Version, g.p.UpdatedAt, img)
}

// emitDeleted tells the sink that the product of the given last version is
// gone.
func (g *productGrain) emitDeleted(ctx context.Context, version int64) {
	g.emit(ctx, catalog.EventProductDeleted, "", version+1, g.deps.Now().UTC().Truncate(time.Microsecond),
		map[string]string{"id": g.id})
}

func (g *productGrain) emit(ctx context.Context, typ catalog.EventType, imageID string, seq int64, at time.Time, data any) {
	if g.deps.Events == nil {
		return
	}
	body, err := json.Marshal(data)
	if err != nil {
		g.deps.Log.Error("render event", zap.String("product_id", g.id), zap.String("type", string(typ)), zap.Error(err))
		return
	}
	g.deps.Events.Emit(ctx, catalog.Event{ProductID: g.id, Seq: seq, Type: typ, ImageID: imageID, At: at.UTC(), Data: body})
}
