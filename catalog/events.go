package catalog

import (
	"context"
	"encoding/json"
	"time"
)

// EventType names what changed.
type EventType string

// The events of a product. Every change of a product's version is exactly
// one event, whose Seq is that version, so a product's events are a complete
// change log: a subscriber that saw event n and then n+1 missed nothing.
const (
	EventProductCreated  EventType = "product.created"
	EventProductUpdated  EventType = "product.updated"
	EventProductDeleted  EventType = "product.deleted"
	EventImagePending    EventType = "image.pending"
	EventImageProcessing EventType = "image.processing"
	EventImageReady      EventType = "image.ready"
	EventImageFailed     EventType = "image.failed"
	// EventImageFormatsReady: the slow formats of a ready image (AVIF) were
	// made, or failed: no variant file is pending any more; its data is
	// the image.
	EventImageFormatsReady EventType = "image.formats_ready"
	// EventImageDeleted: an image was removed; its data is {"id", "product_id"}.
	EventImageDeleted EventType = "image.deleted"
	// EventImageUpdated: an image's alt text or place changed (the places
	// of the images between its old and new one shifted by one); its data
	// is the image.
	EventImageUpdated EventType = "image.updated"
	// EventImagesReordered: the gallery was put in a new order; its data is
	// {"image_ids": [...]}, the whole order.
	EventImagesReordered EventType = "image.reordered"
)

// EventTypes lists every event type, in a stable order (a new slice each
// call).
func EventTypes() []EventType {
	return []EventType{EventProductCreated, EventProductUpdated, EventProductDeleted,
		EventImagePending, EventImageProcessing, EventImageReady, EventImageFailed,
		EventImageFormatsReady, EventImageDeleted, EventImageUpdated, EventImagesReordered}
}

// ImageEvent is the event type of an image that reached status.
func ImageEvent(status ImageStatus) EventType {
	switch status {
	case StatusProcessing:
		return EventImageProcessing
	case StatusReady:
		return EventImageReady
	case StatusFailed:
		return EventImageFailed
	}
	return EventImagePending
}

// Event is one change of a product, as its grain made it.
type Event struct {
	ProductID string `json:"product_id"`
	// Seq is the product's version after the change (a deletion takes the
	// last version plus one): it orders a product's events and is the SSE
	// event id.
	Seq     int64     `json:"seq"`
	Type    EventType `json:"type"`
	ImageID string    `json:"image_id,omitempty"`
	At      time.Time `json:"at"`
	// Data is the JSON of what changed: the image for image events, the
	// product without its images for product events.
	Data json.RawMessage `json:"data"`
}

// EventLog keeps products' events for a retention window and tells every
// node of each new one: on one node in its memory, across nodes in a store
// they share.
type EventLog interface {
	// Append records e. An event whose product and Seq are already recorded
	// is left as it was (a grain may emit one again after a retry).
	Append(ctx context.Context, e Event) error
	// After returns the retained events of productID whose Seq is greater
	// than after, oldest first, at most limit.
	After(ctx context.Context, productID string, after int64, limit int) ([]Event, error)
	// Watch calls notify with a product id, from its own goroutine, each
	// time events of that product may have been appended (by any node),
	// until ctx ends; notify must not block. notify("") says that any
	// product may have new events (notifications were lost: a connection
	// was opened again). Watch returns when ctx ends, or with an error when
	// it cannot watch at all.
	Watch(ctx context.Context, notify func(productID string)) error
}

// WebhookAttempt is one try at delivering an event to a webhook endpoint.
type WebhookAttempt struct {
	// ID is the webhook-id header: the same for every attempt of one event
	// at one endpoint.
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	EventType EventType `json:"event_type"`
	ProductID string    `json:"product_id"`
	Seq       int64     `json:"seq"`
	Attempt   int       `json:"attempt"`
	// Outcome is delivered, retrying (it failed and will be tried again),
	// failed (the last attempt failed) or dropped (the delivery queue was
	// full).
	Outcome    string    `json:"outcome"`
	HTTPStatus int       `json:"http_status,omitempty"`
	Error      string    `json:"error,omitempty"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
}

// The outcomes of a webhook attempt.
const (
	WebhookDelivered = "delivered"
	WebhookRetrying  = "retrying"
	WebhookFailed    = "failed"
	WebhookDropped   = "dropped"
)

// WebhookLog keeps the latest webhook attempts for operators to read.
type WebhookLog interface {
	RecordAttempt(ctx context.Context, a WebhookAttempt) error
	// ListAttempts returns attempts, newest first, at most limit.
	ListAttempts(ctx context.Context, limit int) ([]WebhookAttempt, error)
}
