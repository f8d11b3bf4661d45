package sqlrows_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/persistence/sqlrows"
)

// columns splits a column list.
func columns(list string) []string {
	var cols []string
	for c := range strings.SplitSeq(list, ",") {
		cols = append(cols, strings.TrimSpace(c))
	}
	return cols
}

// scan stores values in dest as a driver would, each value of the type of
// its destination.
func scan(t *testing.T, dest, values []any) {
	t.Helper()
	if len(dest) != len(values) {
		t.Fatalf("%d destinations for %d values", len(dest), len(values))
	}
	for i, v := range values {
		d := reflect.ValueOf(dest[i]).Elem()
		if v == nil {
			d.SetZero()
			continue
		}
		d.Set(reflect.ValueOf(v))
	}
}

func testImage() *catalog.Image {
	processed := time.Date(2025, 6, 1, 12, 0, 1, 0, time.UTC)
	return &catalog.Image{
		ID: "i1", ProductID: "p1", Position: 2, FocalPoint: &catalog.FocalPoint{X: 0.25, Y: 0.75}, Alt: "a lamp",
		Status: catalog.StatusFailed, Error: &catalog.ImageError{Code: "corrupt", Detail: "truncated", Retryable: true},
		Original: catalog.Original{ContentType: "image/jpeg", Bytes: 1234, Width: 640, Height: 480, Frames: 1, SHA256: "abc"},
		Variants: []catalog.Variant{{Name: "thumb", Format: "webp"}}, Placeholder: "LKO2", DominantColor: "#aabbcc",
		Animated: true, RecipeVersion: 3, SourceURL: "https://example.com/lamp.jpg",
		CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), ProcessedAt: &processed,
	}
}

// TestImageRoundTrip: an image written with ImageValues (and the position
// an INSERT works out) reads back the same through ImageRow, and the values
// of ImageStateValues are those of ImageValues for the same columns.
func TestImageRoundTrip(t *testing.T) {
	for _, want := range []*catalog.Image{testImage(), {ID: "i2", ProductID: "p1", Status: catalog.StatusPending, Variants: []catalog.Variant{}}} {
		variants, err := sqlrows.MarshalVariants(want.Variants)
		if err != nil {
			t.Fatal(err)
		}
		values := sqlrows.ImageValues(want.ProductID, want, variants, want.CreatedAt, want.ProcessedAt)
		cols := columns(sqlrows.ImageColumns)
		position := slices.Index(cols, "position")
		values = slices.Insert(values, position, any(want.Position))

		var r sqlrows.ImageRow
		var created time.Time
		var processed *time.Time
		scan(t, r.Dest(&created, &processed), values)
		got, err := r.Image(created, processed)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("read back\n%+v\nwant\n%+v", got, *want)
		}

		state := sqlrows.ImageStateValues(want, variants, want.ProcessedAt)
		stateCols := columns(sqlrows.ImageStateColumns)
		if len(state) != len(stateCols) {
			t.Fatalf("%d state values for %d columns", len(state), len(stateCols))
		}
		for i, c := range stateCols {
			if j := slices.Index(cols, c); j < 0 || !reflect.DeepEqual(state[i], values[j]) {
				t.Errorf("state column %s: %v, while ImageValues has %v", c, state[i], values[j])
			}
		}
	}
}

func TestProductRow(t *testing.T) {
	created, updated := time.Unix(10, 0).UTC(), time.Unix(20, 0).UTC()
	sku := "LAMP-1"
	for _, tt := range []struct {
		sku  *string
		want string
	}{{nil, ""}, {&sku, sku}} {
		var r sqlrows.ProductRow
		var c, u time.Time
		scan(t, r.Dest(&c, &u), []any{"p1", int64(7), "Lamp", "A lamp", int64(1999), "EUR", created, updated, int64(3), tt.sku})
		got := r.Product(c, u)
		want := &catalog.Product{ID: "p1", UserID: 7, Name: "Lamp", Description: "A lamp", Price: 1999, Currency: "EUR",
			CreatedAt: created, UpdatedAt: updated, Version: 3, SKU: tt.want, Images: []catalog.Image{}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Product = %+v, want %+v", got, want)
		}
	}
}

func TestInDueOrder(t *testing.T) {
	at := time.Unix(100, 0)
	got := sqlrows.InDueOrder([]sqlrows.Due{
		{Job: catalog.Job{ImageID: "c"}, At: at.Add(time.Second)},
		{Job: catalog.Job{ImageID: "b"}, At: at},
		{Job: catalog.Job{ImageID: "a"}, At: at},
	})
	want := []catalog.Job{{ImageID: "a"}, {ImageID: "b"}, {ImageID: "c"}}
	if !slices.Equal(got, want) {
		t.Errorf("InDueOrder = %v, want %v", got, want)
	}
	if got := sqlrows.InDueOrder(nil); got == nil || len(got) != 0 {
		t.Errorf("InDueOrder(nil) = %#v, want an empty slice", got)
	}
}

func TestRepublishBefore(t *testing.T) {
	now := time.Unix(1000, 0)
	if before, ok := sqlrows.RepublishBefore(now, time.Minute); !ok || !before.Equal(now.Add(-time.Minute)) {
		t.Errorf("RepublishBefore(now, 1m) = %v, %v; want a minute before now", before, ok)
	}
	for _, off := range []time.Duration{0, -time.Minute} {
		if _, ok := sqlrows.RepublishBefore(now, off); ok {
			t.Errorf("RepublishBefore(now, %v): ok, want off", off)
		}
	}
}

func TestClaimMiss(t *testing.T) {
	if err := sqlrows.ClaimMiss("i1", false); !catalog.IsNotFound(err) {
		t.Errorf("gone: %v, want NotFound", err)
	}
	if err := sqlrows.ClaimMiss("i1", true); !errors.Is(err, catalog.ErrJobBusy) {
		t.Errorf("there: %v, want ErrJobBusy", err)
	}
}

// store is a fake store: a product at version, and the images of it.
type store struct {
	version  int64
	exists   bool
	images   []string
	enqueued []string
	fail     error
}

func (s *store) UpdateProduct(_ context.Context, p *catalog.Product) (bool, error) {
	if s.fail != nil {
		return false, s.fail
	}
	if !s.exists || s.version != p.Version-1 {
		return false, nil
	}
	s.version = p.Version
	return true, nil
}

func (s *store) ProductExists(context.Context, string) (bool, error) { return s.exists, nil }

func (s *store) UpdateGallery(context.Context, string, []byte) (int64, error) {
	return int64(len(s.images)), nil
}

func (s *store) CountImages(context.Context, string) (int64, error) { return int64(len(s.images)), nil }

func (s *store) Enqueue(_ context.Context, job catalog.Job, _ time.Time) error {
	s.enqueued = append(s.enqueued, job.ImageID)
	return nil
}

func TestBump(t *testing.T) {
	ctx := t.Context()
	s := &store{version: 1, exists: true}
	if err := sqlrows.Bump(ctx, s, &catalog.Product{ID: "p1", Version: 2}); err != nil || s.version != 2 {
		t.Fatalf("Bump = %v, version %d; want nil, 2", err, s.version)
	}
	if err := sqlrows.Bump(ctx, s, &catalog.Product{ID: "p1", Version: 2}); !catalog.IsVersionConflict(err) {
		t.Errorf("a stale bump: %v, want a version conflict", err)
	}
	if err := sqlrows.Bump(ctx, &store{}, &catalog.Product{ID: "p1", Version: 2}); !catalog.IsNotFound(err) {
		t.Errorf("no product: %v, want NotFound", err)
	}
	broken := errors.New("broken")
	if err := sqlrows.Bump(ctx, &store{fail: broken}, &catalog.Product{ID: "p1", Version: 2}); !errors.Is(err, broken) {
		t.Errorf("a failing statement: %v, want %v", err, broken)
	}
}

func TestSaveGallery(t *testing.T) {
	ctx := t.Context()
	s := &store{version: 1, exists: true, images: []string{"i1", "i2"}}
	p := &catalog.Product{ID: "p1", Version: 2, Images: []catalog.Image{{ID: "i1"}, {ID: "i2"}}}
	if err := sqlrows.SaveGallery(ctx, s, p, nil, []string{"i2"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.enqueued, []string{"i2"}) {
		t.Errorf("enqueued %v, want [i2]", s.enqueued)
	}
	// A gallery that leaves an image of the product out.
	p = &catalog.Product{ID: "p1", Version: 3, Images: []catalog.Image{{ID: "i1"}}}
	if err := sqlrows.SaveGallery(ctx, s, p, nil, nil, time.Now()); !catalog.IsNotFound(err) {
		t.Errorf("a partial gallery: %v, want NotFound", err)
	}
}

// recorder is a fake ImportRecorder: which rows are recorded, and whether
// the lease holds.
type recorder struct {
	recorded        map[int]bool
	held            bool
	applied, failed int
}

func (r *recorder) SetRowOutcome(_ context.Context, _ string, line, _ int, _ []byte) (bool, error) {
	if r.recorded[line] {
		return false, nil
	}
	r.recorded[line] = true
	return true, nil
}

func (r *recorder) CountRow(_ context.Context, _ string, _ int64, applied, failed int, _ time.Duration) (bool, error) {
	if !r.held {
		return false, nil
	}
	r.applied, r.failed = r.applied+applied, r.failed+failed
	return true, nil
}

func TestRecordImportRow(t *testing.T) {
	ctx := t.Context()
	r := &recorder{recorded: map[int]bool{}, held: true}
	failed, err := sqlrows.OutcomeOf(&catalog.ImportRowError{Line: 2, Code: "invalid"})
	if err != nil {
		t.Fatal(err)
	}
	applied, err := sqlrows.OutcomeOf(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		line int
		o    sqlrows.RowOutcome
	}{{1, applied}, {2, failed}, {2, failed}} { // line 2 twice: counted once
		if err := sqlrows.RecordImportRow(ctx, r, "imp", 1, step.line, step.o, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if r.applied != 1 || r.failed != 1 {
		t.Errorf("counted %d applied, %d failed; want 1, 1", r.applied, r.failed)
	}
	r.held = false
	if err := sqlrows.RecordImportRow(ctx, r, "imp", 1, 3, applied, time.Minute); !errors.Is(err, catalog.ErrImportLeaseLost) {
		t.Errorf("a lost lease: %v, want ErrImportLeaseLost", err)
	}
}
