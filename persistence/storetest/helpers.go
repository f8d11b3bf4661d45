package storetest

import (
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// The helpers below serve the stores' own tests beside the suite.

// AddJob creates a product with one image in s, which queues the image's
// job, and returns the job: the Add of a queuetest.Harness for a store
// whose AddImage queues jobs.
func AddJob(t *testing.T, s catalog.ProductStore) catalog.Job {
	t.Helper()
	now := time.Now()
	p := &catalog.Product{ID: NewID(t), UserID: 1, Name: "Chair", Price: 100, Currency: "EUR",
		CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := s.CreateProduct(t.Context(), p); err != nil {
		t.Fatalf("CreateProduct: %v", err)
	}
	img := &catalog.Image{ID: NewID(t), ProductID: p.ID, Status: catalog.StatusPending, CreatedAt: now}
	p.Version++
	if err := s.AddImage(t.Context(), p, img); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	return catalog.Job{ImageID: img.ID, ProductID: p.ID}
}

// CheckMicrosecondTimes checks that s, an empty store, gives times back in
// UTC, truncated to the microsecond that SQL stores keep (not rounded).
func CheckMicrosecondTimes(t *testing.T, s catalog.ProductStore) {
	t.Helper()
	created := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("EST", -5*3600))
	p := &catalog.Product{ID: NewID(t), UserID: 1, Name: "Chair", Currency: "EUR", CreatedAt: created, UpdatedAt: created, Version: 1}
	if err := s.CreateProduct(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProduct(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 6, 1, 17, 0, 0, 123456000, time.UTC)
	if got.CreatedAt != want {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, want)
	}
}
