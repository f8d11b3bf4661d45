package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// MaxImportImages bounds the images of one import row.
const MaxImportImages = catalog.MaxImagesPerProduct

// skuFinder finds a product by its owner's SKU.
type skuFinder interface {
	ProductIDBySKU(ctx context.Context, owner int64, sku string) (string, error)
}

// ImportDeps are what the import runner needs.
type ImportDeps struct {
	Store   catalog.ImportStore
	SKUs    skuFinder
	Service *Service
	Uploads *Uploads
	// CheckURL refuses an image URL that may not be fetched (its syntax,
	// or an address the fetcher's guard blocks), so that its row fails at
	// once rather than its image later.
	CheckURL func(ctx context.Context, url string) error
	Log      *zap.Logger
	// Lease is how long a runner holds an import without recording a row
	// (30 s): a node that dies leaves its import to another after it.
	Lease time.Duration
	// Poll is how often an idle runner looks for imports (1 s); Wake
	// makes it look at once.
	Poll time.Duration
	Now  func() time.Time
}

// ImportRunner applies imports' rows, one import at a time: each node runs
// one, and an import is leased to one runner at a time.
type ImportRunner struct {
	deps ImportDeps
	wake chan struct{}
}

// NewImportRunner returns a runner; Run starts it.
func NewImportRunner(deps ImportDeps) *ImportRunner {
	if deps.Lease <= 0 {
		deps.Lease = 30 * time.Second
	}
	if deps.Poll <= 0 {
		deps.Poll = time.Second
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &ImportRunner{deps: deps, wake: make(chan struct{}, 1)}
}

// Wake makes an idle runner look for imports now.
func (r *ImportRunner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run applies imports until ctx ends.
func (r *ImportRunner) Run(ctx context.Context) {
	for ctx.Err() == nil {
		imp, token, err := r.deps.Store.ClaimImport(ctx, r.deps.Lease)
		if err == nil {
			r.run(ctx, imp, token)
			continue
		}
		if !catalog.IsNotFound(err) && ctx.Err() == nil {
			r.deps.Log.Warn("claim an import", zap.Error(err))
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-time.After(r.deps.Poll):
		}
	}
}

// run applies the pending rows of a claimed import in line order, and
// finishes it when none is left. It stops when its lease is lost.
func (r *ImportRunner) run(ctx context.Context, imp *catalog.Import, token int64) {
	start := r.deps.Now()
	applied, failed := 0, 0
	log := r.deps.Log.With(zap.String("import_id", imp.ID))
	end := func(outcome string, err error) {
		fields := []zap.Field{zap.String("outcome", outcome), zap.Int("rows", imp.Total), zap.Int("applied", applied),
			zap.Int("failed", failed), zap.Duration("duration", r.deps.Now().Sub(start))}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		log.Info("import", fields...)
	}
	for {
		rows, err := r.deps.Store.PendingImportRows(ctx, imp.ID, 100)
		if err != nil {
			end("interrupted", err) // the lease runs out; a runner takes it again
			return
		}
		if len(rows) == 0 {
			err := r.deps.Store.FinishImport(ctx, imp.ID, token)
			end(map[bool]string{true: "completed", false: "interrupted"}[err == nil], err)
			return
		}
		for _, row := range rows {
			rowErr := r.apply(ctx, imp, token, row)
			if ctx.Err() != nil {
				end("interrupted", ctx.Err())
				return
			}
			if err := r.deps.Store.RecordImportRow(ctx, imp.ID, token, row.Line, rowErr, r.deps.Lease); err != nil {
				end("interrupted", err)
				return
			}
			if rowErr == nil {
				applied++
			} else {
				failed++
			}
		}
	}
}

// importImage is one image of a row: where it is fetched from, and its
// alt text.
type importImage struct {
	URL string  `json:"url"`
	Alt *string `json:"alt"`
}

// rowError is the error of a row from what an operation answered.
func rowError(line int, field string, err error) *catalog.ImportRowError {
	var ce *catalog.Error
	if !errors.As(err, &ce) {
		return &catalog.ImportRowError{Line: line, Code: catalog.FailInternal, Detail: err.Error()}
	}
	e := &catalog.ImportRowError{Line: line, Code: ce.Code, Detail: ce.Detail, Fields: ce.Fields}
	if field != "" {
		e.Detail = field + ": " + ce.Detail
		if len(e.Fields) == 0 {
			e.Fields = []catalog.FieldError{{Field: field, Detail: ce.Detail}}
		}
		for i := range e.Fields {
			if e.Fields[i].Field != field {
				e.Fields[i].Field = field + "." + e.Fields[i].Field
			}
		}
	}
	return e
}

// apply upserts the row's product by its owner's SKU and imports the
// images whose URLs the product does not have yet (setting their alt
// texts); it returns why the row was not applied, or nil. Applying a row
// again changes nothing more.
func (r *ImportRunner) apply(ctx context.Context, imp *catalog.Import, token int64, row catalog.ImportRow) *catalog.ImportRowError {
	if row.SupersededBy > 0 {
		return &catalog.ImportRowError{Line: row.Line, Code: "superseded",
			Detail: fmt.Sprintf("line %d has the same SKU %q: the last row of a SKU is the one applied", row.SupersededBy, row.SKU),
			Fields: []catalog.FieldError{{Field: "sku", Detail: fmt.Sprintf("given again at line %d", row.SupersededBy)}}}
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(row.Doc, &doc); err != nil || doc == nil {
		return &catalog.ImportRowError{Line: row.Line, Code: "malformed_json", Detail: "the row is not a JSON object"}
	}
	var images []importImage
	if raw, ok := doc["images"]; ok {
		delete(doc, "images")
		if err := json.Unmarshal(raw, &images); err != nil || len(images) > MaxImportImages {
			return &catalog.ImportRowError{Line: row.Line, Code: "validation",
				Detail: fmt.Sprintf("images must be an array of at most %d {\"url\": \"https://…\", \"alt\": \"…\"}", MaxImportImages),
				Fields: []catalog.FieldError{{Field: "images", Detail: "must be an array of {\"url\", \"alt\"}"}}}
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return rowError(row.Line, "", err)
	}
	body = defaultOwner(body, imp.Owner)
	in, err := catalog.ParseProductInput(body)
	if err != nil {
		return rowError(row.Line, "", err)
	}
	if in.SKU == "" {
		return &catalog.ImportRowError{Line: row.Line, Code: "validation", Detail: "sku is required: an import upserts products by SKU",
			Fields: []catalog.FieldError{{Field: "sku", Detail: "is required"}}}
	}
	// The product's images before: an URL it has already is not fetched
	// again (nor checked against the fetch guard: /media of this vitrine,
	// as an export writes it, is on a blocked address).
	var before []galleryImage
	err = r.patiently(ctx, imp, token, func() error {
		before, err = r.imagesOfSKU(ctx, in)
		return err
	})
	if err != nil {
		return rowError(row.Line, "", err)
	}
	for i, img := range images {
		field := fmt.Sprintf("images[%d]", i)
		if img.URL == "" {
			return &catalog.ImportRowError{Line: row.Line, Code: "validation", Detail: field + ".url is required",
				Fields: []catalog.FieldError{{Field: field + ".url", Detail: "is required"}}}
		}
		if findURL(before, img.URL) == nil {
			if err := r.deps.CheckURL(ctx, img.URL); err != nil {
				return &catalog.ImportRowError{Line: row.Line, Code: "validation", Detail: field + ".url " + err.Error(),
					Fields: []catalog.FieldError{{Field: field + ".url", Detail: err.Error()}}}
			}
		}
		if img.Alt != nil {
			if _, err := catalog.ParseImagePatch(altPatch(*img.Alt), 1); err != nil {
				return rowError(row.Line, field, err)
			}
		}
	}
	var p Product
	err = r.patiently(ctx, imp, token, func() error {
		p, err = r.upsert(ctx, imp.Owner, in, body)
		return err
	})
	if err != nil {
		return rowError(row.Line, "", err)
	}
	have, err := imagesOf(p.Body)
	if err != nil {
		return rowError(row.Line, "", err)
	}
	for i, img := range images {
		field := fmt.Sprintf("images[%d]", i)
		imageID, alt := "", ""
		if h := findURL(have, img.URL); h != nil {
			imageID, alt = h.ID, h.Alt
		} else {
			err := r.patiently(ctx, imp, token, func() error {
				added, _, err := r.deps.Uploads.Import(ctx, p.ID, img.URL, imp.Owner)
				if err == nil {
					imageID = added.ID
				}
				return err
			})
			if err != nil {
				return rowError(row.Line, field, err)
			}
		}
		if img.Alt == nil || *img.Alt == alt {
			continue
		}
		err := r.patiently(ctx, imp, token, func() error {
			_, _, err := r.deps.Service.PatchImage(ctx, p.ID, imageID, altPatch(*img.Alt), "", imp.Owner)
			return err
		})
		if err != nil {
			return rowError(row.Line, field, err)
		}
	}
	return nil
}

// galleryImage is what an import reads of a product's image.
type galleryImage struct {
	ID        string `json:"id"`
	Alt       string `json:"alt"`
	SourceURL string `json:"source_url"`
	Variants  []struct {
		URL string `json:"url"`
	} `json:"variants"`
}

// imagesOf reads the images of a rendered product.
func imagesOf(body []byte) ([]galleryImage, error) {
	var p struct {
		Images []galleryImage `json:"images"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decode product: %w", err)
	}
	return p.Images, nil
}

// findURL is the image that was imported from url, or serves it as one of
// its variants (an export names an uploaded photo so); nil when none.
func findURL(images []galleryImage, url string) *galleryImage {
	for i := range images {
		if images[i].SourceURL == url {
			return &images[i]
		}
		for _, v := range images[i].Variants {
			if v.URL == url {
				return &images[i]
			}
		}
	}
	return nil
}

// imagesOfSKU returns the images of the owner's product of the row's SKU;
// none when there is no such product yet.
func (r *ImportRunner) imagesOfSKU(ctx context.Context, in catalog.ProductInput) ([]galleryImage, error) {
	id, err := r.deps.SKUs.ProductIDBySKU(ctx, in.UserID, in.SKU)
	switch {
	case catalog.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, catalog.Unavailable("the database", err)
	}
	p, err := r.deps.Service.Get(ctx, id)
	if catalog.IsNotFound(err) {
		return nil, nil // deleted meanwhile
	}
	if err != nil {
		return nil, err
	}
	return imagesOf(p.Body)
}

// altPatch is the merge patch that sets an image's alt text.
func altPatch(alt string) []byte {
	b, _ := json.Marshal(map[string]string{"alt": alt})
	return b
}

// upsert creates the product of the owner's SKU, or replaces the one that
// has it (which changes nothing when it is the same).
func (r *ImportRunner) upsert(ctx context.Context, owner int64, in catalog.ProductInput, doc []byte) (Product, error) {
	for range 2 {
		id, err := r.deps.SKUs.ProductIDBySKU(ctx, in.UserID, in.SKU)
		switch {
		case catalog.IsNotFound(err):
			p, err := r.deps.Service.Create(ctx, doc, owner)
			if catalog.ErrorKind(err) == catalog.KindConflict {
				continue // made meanwhile by another writer: replace it
			}
			return p, err
		case err != nil:
			return Product{}, catalog.Unavailable("the database", err)
		default:
			return r.deps.Service.Replace(ctx, id, doc, "", owner)
		}
	}
	return Product{}, catalog.Errorf(catalog.KindConflict, "sku_taken", "the product of SKU %q changed during the import; it is tried again", in.SKU)
}

// patiently runs op until it succeeds or fails for a reason waiting cannot
// mend: a service that is unavailable or busy (the image backlog is full)
// is waited for, the import's lease renewed meanwhile.
func (r *ImportRunner) patiently(ctx context.Context, imp *catalog.Import, token int64, op func() error) error {
	pause := 200 * time.Millisecond
	for {
		err := op()
		kind := catalog.ErrorKind(err)
		if err == nil || (kind != catalog.KindUnavailable && kind != catalog.KindTooManyRequests) {
			return err
		}
		var ce *catalog.Error
		if errors.As(err, &ce) && ce.RetryAfter > 0 {
			pause = min(ce.RetryAfter, 10*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
		if err := r.deps.Store.RenewImport(ctx, imp.ID, token, r.deps.Lease); err != nil {
			return err
		}
	}
}

// Accept stores an import and its rows (nothing when next fails) and
// wakes this node's runner.
func (r *ImportRunner) Accept(ctx context.Context, imp *catalog.Import, next func() (catalog.ImportRow, error)) error {
	if err := r.deps.Store.CreateImport(ctx, imp, next); err != nil {
		return err
	}
	r.Wake()
	return nil
}

// Get returns an import with its counts.
func (r *ImportRunner) Get(ctx context.Context, id string) (*catalog.Import, error) {
	if !catalog.ValidID(id) {
		return nil, catalog.NotFound("import %q does not exist", id)
	}
	return r.deps.Store.GetImport(ctx, id)
}

// Errors returns the errors of an import's failed rows after line.
func (r *ImportRunner) Errors(ctx context.Context, id string, afterLine, limit int) ([]catalog.ImportRowError, error) {
	return r.deps.Store.ImportErrors(ctx, id, afterLine, limit)
}
