// Package importtest is the conformance suite of catalog.ImportStore: every
// adapter runs the very same tests from its own _test.go with Run.
package importtest

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Run runs the suite. open must return a new, empty store for each call.
func Run(t *testing.T, open func(t *testing.T) catalog.ImportStore) {
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, s catalog.ImportStore)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateFailsWhole", testCreateFailsWhole},
		{"ClaimRecordFinish", testClaimRecordFinish},
		{"LeaseLostToAnotherRunner", testLeaseLost},
		{"OneClaimAtATime", testOneClaim},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func newImport(owner int64) *catalog.Import {
	return &catalog.Import{ID: uuid.Must(uuid.NewV7()).String(), Owner: owner, Format: "ndjson",
		CreatedAt: time.Date(2026, 12, 6, 10, 0, 0, 123000, time.UTC)}
}

// rows yields n rows, lines 2, 4, 6, …
func rows(n int) func() (catalog.ImportRow, error) {
	i := 0
	return func() (catalog.ImportRow, error) {
		if i == n {
			return catalog.ImportRow{}, io.EOF
		}
		i++
		// Rows 1 and 3 share a SKU; row 2 has none.
		sku := fmt.Sprintf("S%d", i)
		switch i {
		case 2:
			sku = ""
		case 3:
			sku = "S1"
		}
		return catalog.ImportRow{Line: 2 * i, SKU: sku, Doc: fmt.Appendf(nil, `{"sku":"S%d","name":"«%d»"}`, i, i)}, nil
	}
}

func create(t *testing.T, s catalog.ImportStore, imp *catalog.Import, n int) {
	t.Helper()
	if err := s.CreateImport(t.Context(), imp, rows(n)); err != nil {
		t.Fatalf("CreateImport: %v", err)
	}
}

func testCreateAndGet(t *testing.T, s catalog.ImportStore) {
	imp := newImport(7)
	create(t, s, imp, 1203)
	if imp.Total != 1203 || imp.Status != catalog.ImportQueued {
		t.Errorf("created: total %d status %s", imp.Total, imp.Status)
	}
	got, err := s.GetImport(t.Context(), imp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != 7 || got.Format != "ndjson" || got.Total != 1203 || got.Applied != 0 || got.Failed != 0 ||
		got.Status != catalog.ImportQueued || !got.CreatedAt.Equal(imp.CreatedAt) || got.FinishedAt != nil {
		t.Errorf("GetImport = %+v", got)
	}
	if _, err := s.GetImport(t.Context(), uuid.Must(uuid.NewV7()).String()); !catalog.IsNotFound(err) {
		t.Errorf("GetImport(unknown) error = %v, want not found", err)
	}
	pending, err := s.PendingImportRows(t.Context(), imp.ID, 3)
	if err != nil || len(pending) != 3 || pending[0].Line != 2 || pending[2].Line != 6 || string(pending[1].Doc) != `{"sku":"S2","name":"«2»"}` {
		t.Errorf("PendingImportRows = %v, %v", pending, err)
	}
	// The last row of a SKU is the one applied.
	if pending[0].SKU != "S1" || pending[0].SupersededBy != 6 || pending[1].SKU != "" || pending[1].SupersededBy != 0 || pending[2].SupersededBy != 0 {
		t.Errorf("SKUs and supersession: %+v", pending)
	}
}

func testCreateFailsWhole(t *testing.T, s catalog.ImportStore) {
	imp := newImport(0)
	bad := errors.New("line 700: not JSON")
	next := rows(1000)
	i := 0
	err := s.CreateImport(t.Context(), imp, func() (catalog.ImportRow, error) {
		i++
		if i == 700 {
			return catalog.ImportRow{}, bad
		}
		return next()
	})
	if !errors.Is(err, bad) {
		t.Fatalf("CreateImport error = %v, want %v", err, bad)
	}
	if _, err := s.GetImport(t.Context(), imp.ID); !catalog.IsNotFound(err) {
		t.Errorf("a refused import was stored: %v", err)
	}
}

func testClaimRecordFinish(t *testing.T, s catalog.ImportStore) {
	if _, _, err := s.ClaimImport(t.Context(), time.Minute); !catalog.IsNotFound(err) {
		t.Fatalf("ClaimImport with none: %v", err)
	}
	imp := newImport(0)
	create(t, s, imp, 3)
	got, token, err := s.ClaimImport(t.Context(), time.Minute)
	if err != nil || got.ID != imp.ID || got.Status != catalog.ImportRunning {
		t.Fatalf("ClaimImport = %+v, %v", got, err)
	}
	rowErr := &catalog.ImportRowError{Line: 4, Code: "validation", Detail: "price is required", Fields: []catalog.FieldError{{Field: "price", Detail: "is required"}}}
	for _, r := range []struct {
		line int
		err  *catalog.ImportRowError
	}{{2, nil}, {4, rowErr}, {4, rowErr}} { // a row recorded twice counts once
		if err := s.RecordImportRow(t.Context(), imp.ID, token, r.line, r.err, time.Minute); err != nil {
			t.Fatalf("RecordImportRow(%d): %v", r.line, err)
		}
	}
	pending, err := s.PendingImportRows(t.Context(), imp.ID, 10)
	if err != nil || len(pending) != 1 || pending[0].Line != 6 {
		t.Fatalf("pending after two rows: %v, %v", pending, err)
	}
	got, _ = s.GetImport(t.Context(), imp.ID)
	if got.Applied != 1 || got.Failed != 1 || got.Total != 3 {
		t.Errorf("counts %+v, want 1 applied, 1 failed of 3", got)
	}
	errs, err := s.ImportErrors(t.Context(), imp.ID, 0, 10)
	if err != nil || len(errs) != 1 || errs[0].Line != 4 || errs[0].Detail != rowErr.Detail || len(errs[0].Fields) != 1 {
		t.Errorf("ImportErrors = %+v, %v", errs, err)
	}
	if errs, _ := s.ImportErrors(t.Context(), imp.ID, 4, 10); len(errs) != 0 {
		t.Errorf("ImportErrors after line 4 = %v", errs)
	}
	if err := s.RecordImportRow(t.Context(), imp.ID, token, 6, nil, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishImport(t.Context(), imp.ID, token); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetImport(t.Context(), imp.ID)
	if got.Status != catalog.ImportCompleted || got.FinishedAt == nil || got.Applied != 2 {
		t.Errorf("finished: %+v", got)
	}
	if _, _, err := s.ClaimImport(t.Context(), time.Minute); !catalog.IsNotFound(err) {
		t.Errorf("a completed import was claimed: %v", err)
	}
}

func testLeaseLost(t *testing.T, s catalog.ImportStore) {
	imp := newImport(0)
	create(t, s, imp, 2)
	_, first, err := s.ClaimImport(t.Context(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the first runner's lease runs out
	_, second, err := s.ClaimImport(t.Context(), time.Minute)
	if err != nil {
		t.Fatalf("claim after the lease ran out: %v", err)
	}
	for name, err := range map[string]error{
		"RecordImportRow": s.RecordImportRow(t.Context(), imp.ID, first, 2, nil, time.Minute),
		"RenewImport":     s.RenewImport(t.Context(), imp.ID, first, time.Minute),
		"FinishImport":    s.FinishImport(t.Context(), imp.ID, first),
	} {
		if !errors.Is(err, catalog.ErrImportLeaseLost) {
			t.Errorf("%s with a lost lease: %v, want ErrImportLeaseLost", name, err)
		}
	}
	if got, _ := s.GetImport(t.Context(), imp.ID); got.Applied != 0 {
		t.Errorf("a lost lease recorded a row: %+v", got)
	}
	if err := s.RenewImport(t.Context(), imp.ID, second, time.Minute); err != nil {
		t.Errorf("RenewImport by the holder: %v", err)
	}
}

func testOneClaim(t *testing.T, s catalog.ImportStore) {
	imp := newImport(0)
	create(t, s, imp, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	claimed := 0
	for range 8 {
		wg.Go(func() {
			if _, _, err := s.ClaimImport(t.Context(), time.Minute); err == nil {
				mu.Lock()
				claimed++
				mu.Unlock()
			} else if !catalog.IsNotFound(err) {
				t.Errorf("ClaimImport: %v", err)
			}
		})
	}
	wg.Wait()
	if claimed != 1 {
		t.Errorf("%d runners claimed one import, want 1", claimed)
	}
}
