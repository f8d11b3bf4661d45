// Package storetest is the conformance suite of catalog.ProductStore: every
// adapter (the embedded SQLite one, PostgreSQL, ...) runs the very same
// tests from its own _test.go with Run.
package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/vitrine-dev/vitrine/catalog"
)

// Run runs the suite. open must return a new, empty store for each call; it
// should register its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) catalog.ProductStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s catalog.ProductStore)
	}{
		{"CreateGetRoundTrip", testCreateGet},
		{"GetUnknown", testGetUnknown},
		{"CreateDuplicate", testCreateDuplicate},
		{"Update", testUpdate},
		{"UpdateStaleVersion", testUpdateStale},
		{"UpdateUnknown", testUpdateUnknown},
		{"Delete", testDelete},
		{"DeleteCascadesImages", testDeleteCascades},
		{"ListFilters", testListFilters},
		{"ListPagination", testListPagination},
		{"ListQueryUnicode", testListQueryUnicode},
		{"ListQueryLiteral", testListQueryLiteral},
		{"ListIncludesImages", testListIncludesImages},
		{"ListManyCommonAndRareWords", testListMany},
		{"ListAfterRename", testListAfterRename},
		{"GetProducts", testGetProducts},
		{"AddImage", testAddImage},
		{"AddImageConflicts", testAddImageConflicts},
		{"SaveImage", testSaveImage},
		{"SaveImageUnknown", testSaveImageUnknown},
		{"ImagesOrdered", testImagesOrdered},
		{"DeleteImage", testDeleteImage},
		{"SKU", testSKU},
		{"SaveGallery", testSaveGallery},
		{"ConcurrentUpdateOneWins", testConcurrentUpdate},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// at is a time d after a fixed instant. It has microsecond precision, the
// precision stores keep, and is not in UTC, so that the suite sees stores
// return UTC whatever they were given.
func at(d time.Duration) time.Time {
	return time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("UTC+2", 2*60*60)).Add(d)
}

// NewID is a new id of a product or an image, as the stores take them: a
// UUIDv7.
func NewID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func newProduct(t *testing.T, userID int64, name string, price catalog.Price) *catalog.Product {
	t.Helper()
	return &catalog.Product{
		ID:          NewID(t),
		UserID:      userID,
		Name:        name,
		Description: "about " + name,
		Price:       price,
		Currency:    "EUR",
		CreatedAt:   at(0),
		UpdatedAt:   at(0),
		Version:     1,
	}
}

func create(t *testing.T, s catalog.ProductStore, p *catalog.Product) {
	t.Helper()
	if err := s.CreateProduct(t.Context(), p); err != nil {
		t.Fatalf("CreateProduct(%s): %v", p.Name, err)
	}
}

func get(t *testing.T, s catalog.ProductStore, id string) *catalog.Product {
	t.Helper()
	p, err := s.GetProduct(t.Context(), id)
	if err != nil {
		t.Fatalf("GetProduct(%s): %v", id, err)
	}
	return p
}

// next returns a copy of p as its next version, changed at at(d).
func next(p *catalog.Product, d time.Duration) *catalog.Product {
	q := *p
	q.Images = nil
	q.Version++
	q.UpdatedAt = at(d)
	return &q
}

func newImage(t *testing.T, productID string, created time.Time) *catalog.Image {
	t.Helper()
	id := NewID(t)
	return &catalog.Image{
		ID:        id,
		ProductID: productID,
		Status:    catalog.StatusPending,
		Original: catalog.Original{
			ContentType: "image/png",
			Bytes:       123456,
			Width:       1600,
			Height:      1200,
			Frames:      1,
			SHA256:      strings.Repeat("ab", 32),
		},
		Variants:  []catalog.Variant{},
		CreatedAt: created,
	}
}

func wantUTC(t *testing.T, what string, tm time.Time, want time.Time) {
	t.Helper()
	if !tm.Equal(want) {
		t.Errorf("%s = %v, want %v", what, tm, want)
	}
	if tm.Location() != time.UTC {
		t.Errorf("%s is in %v, want UTC", what, tm.Location())
	}
}

// checkProduct compares the stored fields of got and want (not images).
func checkProduct(t *testing.T, got, want *catalog.Product) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Name != want.Name ||
		got.Description != want.Description || got.Price != want.Price ||
		got.Currency != want.Currency || got.Version != want.Version {
		t.Errorf("product = %+v\nwant      %+v", *got, *want)
	}
	wantUTC(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	wantUTC(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
}

// checkImage compares every field of got and want, times in UTC.
func checkImage(t *testing.T, got, want catalog.Image) {
	t.Helper()
	wantUTC(t, "image CreatedAt", got.CreatedAt, want.CreatedAt)
	if (got.ProcessedAt == nil) != (want.ProcessedAt == nil) {
		t.Errorf("image ProcessedAt = %v, want %v", got.ProcessedAt, want.ProcessedAt)
	} else if got.ProcessedAt != nil {
		wantUTC(t, "image ProcessedAt", *got.ProcessedAt, *want.ProcessedAt)
	}
	if got.Variants == nil {
		t.Errorf("image Variants is nil, want a non-nil slice")
	}
	g, w := got, want
	g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	g.ProcessedAt, w.ProcessedAt = nil, nil
	if w.Variants == nil {
		w.Variants = []catalog.Variant{}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("image = %+v\nwant    %+v", g, w)
	}
}

func ids(ps []*catalog.Product) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func names(ps []*catalog.Product) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func list(t *testing.T, s catalog.ProductStore, f catalog.ProductFilter) []*catalog.Product {
	t.Helper()
	ids, err := s.ListProductIDs(t.Context(), f)
	if err != nil {
		t.Fatalf("ListProductIDs(%+v): %v", f, err)
	}
	ps, err := s.GetProducts(t.Context(), ids)
	if err != nil {
		t.Fatalf("GetProducts(%v): %v", ids, err)
	}
	return catalog.InOrder(ps, ids)
}

func price(p catalog.Price) *catalog.Price { return &p }

func testCreateGet(t *testing.T, s catalog.ProductStore) {
	tests := []struct {
		name string
		p    *catalog.Product
	}{
		{"plain", newProduct(t, 1, "Chair", 1999)},
		{"unicode and empty description", &catalog.Product{ID: NewID(t), UserID: 1 << 40, Name: "Fauteuil à bascule 🪑",
			Price: 0, Currency: "JPY", CreatedAt: at(0), UpdatedAt: at(time.Microsecond), Version: 1}},
		{"max price", newProduct(t, 2, "Yacht", catalog.MaxPrice)},
		{"long description", &catalog.Product{ID: NewID(t), UserID: 3, Name: "Lamp", Description: strings.Repeat("é\n\"x'", 2000),
			Price: 10, Currency: "USD", CreatedAt: at(-time.Hour), UpdatedAt: at(0), Version: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			create(t, s, tt.p)
			got := get(t, s, tt.p.ID)
			checkProduct(t, got, tt.p)
			if got.Images == nil || len(got.Images) != 0 {
				t.Errorf("Images = %#v, want an empty non-nil slice", got.Images)
			}
		})
	}
}

func testGetUnknown(t *testing.T, s catalog.ProductStore) {
	_, err := s.GetProduct(t.Context(), NewID(t))
	if !catalog.IsNotFound(err) {
		t.Fatalf("GetProduct(unknown) error = %v, want not found", err)
	}
}

func testCreateDuplicate(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 100)
	create(t, s, p)
	dup := *p
	dup.Name = "Other"
	err := s.CreateProduct(t.Context(), &dup)
	if catalog.ErrorKind(err) != catalog.KindConflict {
		t.Fatalf("CreateProduct(same id) error = %v, want a conflict", err)
	}
	if got := get(t, s, p.ID); got.Name != "Chair" {
		t.Errorf("after a refused duplicate, name = %q, want Chair", got.Name)
	}
}

func testUpdate(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1999)
	create(t, s, p)
	u := next(p, time.Minute)
	u.Name, u.Description, u.Price, u.Currency, u.UserID = "Armchair", "comfier", 2999, "USD", 2
	if err := s.UpdateProduct(t.Context(), u); err != nil {
		t.Fatalf("UpdateProduct: %v", err)
	}
	got := get(t, s, p.ID)
	checkProduct(t, got, u)
	if got.Version != 2 {
		t.Errorf("Version = %d, want 2", got.Version)
	}
}

func testUpdateStale(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1999)
	create(t, s, p)
	if err := s.UpdateProduct(t.Context(), next(p, time.Second)); err != nil {
		t.Fatalf("first UpdateProduct: %v", err)
	}
	tests := []struct {
		name    string
		version int64
	}{
		{"stored version, read before the last write", 2},
		{"too far ahead", 4},
		{"behind", 1},
		{"zero", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := next(p, time.Hour)
			u.Version, u.Name = tt.version, "stale"
			err := s.UpdateProduct(t.Context(), u)
			if !catalog.IsVersionConflict(err) {
				t.Fatalf("UpdateProduct(version %d) error = %v, want a version conflict", tt.version, err)
			}
			if catalog.ErrorKind(err) != catalog.KindConflict {
				t.Errorf("ErrorKind = %s, want conflict", catalog.ErrorKind(err))
			}
			if got := get(t, s, p.ID); got.Name != "Chair" || got.Version != 2 {
				t.Errorf("after a stale write: name %q version %d, want Chair 2", got.Name, got.Version)
			}
		})
	}
}

func testUpdateUnknown(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Ghost", 1)
	p.Version = 2
	if err := s.UpdateProduct(t.Context(), p); !catalog.IsNotFound(err) {
		t.Fatalf("UpdateProduct(unknown) error = %v, want not found", err)
	}
}

func testDelete(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	keep := newProduct(t, 1, "Table", 1)
	create(t, s, p)
	create(t, s, keep)
	if err := s.DeleteProduct(t.Context(), p.ID); err != nil {
		t.Fatalf("DeleteProduct: %v", err)
	}
	if _, err := s.GetProduct(t.Context(), p.ID); !catalog.IsNotFound(err) {
		t.Errorf("GetProduct(deleted) error = %v, want not found", err)
	}
	if err := s.DeleteProduct(t.Context(), p.ID); !catalog.IsNotFound(err) {
		t.Errorf("DeleteProduct(deleted) error = %v, want not found", err)
	}
	get(t, s, keep.ID)
	if got := ids(list(t, s, catalog.ProductFilter{Limit: 10})); !slices.Equal(got, []string{keep.ID}) {
		t.Errorf("list after delete = %v, want [%s]", got, keep.ID)
	}
}

func testDeleteCascades(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	var imgs []*catalog.Image
	cur := p
	for i := range 2 {
		img := newImage(t, p.ID, at(time.Duration(i)*time.Second))
		cur = next(cur, time.Duration(i)*time.Second)
		if err := s.AddImage(t.Context(), cur, img); err != nil {
			t.Fatalf("AddImage: %v", err)
		}
		imgs = append(imgs, img)
	}
	if err := s.DeleteProduct(t.Context(), p.ID); err != nil {
		t.Fatalf("DeleteProduct: %v", err)
	}
	// A product created again under the same id has none of the old images,
	// and the old image ids are free again.
	create(t, s, p)
	if got := get(t, s, p.ID); len(got.Images) != 0 {
		t.Fatalf("images survived their product: %+v", got.Images)
	}
	again := *imgs[0]
	if err := s.AddImage(t.Context(), next(p, time.Minute), &again); err != nil {
		t.Fatalf("AddImage(id of a deleted image): %v", err)
	}
}

// catalogFixture is a small catalog that every filter selects from.
func catalogFixture(t *testing.T, s catalog.ProductStore) []*catalog.Product {
	t.Helper()
	rows := []struct {
		user  int64
		name  string
		price catalog.Price
	}{
		{1, "Red chair", 1000},
		{1, "Blue chair", 2500},
		{2, "Chair cushion", 500},
		{2, "Oak table", 25000},
		{1, "Table lamp", 4999},
		{3, "Floor lamp", 5000},
		{2, "Stool", 5001},
		{3, "High CHAIR", 0},
	}
	var ps []*catalog.Product
	for _, r := range rows {
		p := newProduct(t, r.user, r.name, r.price)
		create(t, s, p)
		ps = append(ps, p)
	}
	return ps
}

// expect is what a store must return for f over ps: matching products,
// newest (greatest id) first.
func expect(ps []*catalog.Product, f catalog.ProductFilter) []string {
	var out []string
	for _, p := range ps {
		switch {
		case f.UserID != 0 && p.UserID != f.UserID,
			f.MinPrice != nil && p.Price < *f.MinPrice,
			f.MaxPrice != nil && p.Price > *f.MaxPrice,
			f.Query != "" && !strings.Contains(strings.ToLower(p.Name), strings.ToLower(f.Query)),
			f.After != "" && p.ID >= f.After:
			continue
		}
		out = append(out, p.ID)
	}
	slices.Sort(out)
	slices.Reverse(out)
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

func testListFilters(t *testing.T, s catalog.ProductStore) {
	ps := catalogFixture(t, s)
	tests := []struct {
		name   string
		filter catalog.ProductFilter
		want   int // how many match, as a check on the fixture
	}{
		{"none", catalog.ProductFilter{Limit: 100}, 8},
		{"limit", catalog.ProductFilter{Limit: 3}, 3},
		{"user", catalog.ProductFilter{UserID: 2, Limit: 100}, 3},
		{"unknown user", catalog.ProductFilter{UserID: 99, Limit: 100}, 0},
		{"min price inclusive", catalog.ProductFilter{MinPrice: price(5000), Limit: 100}, 3},
		{"max price inclusive", catalog.ProductFilter{MaxPrice: price(1000), Limit: 100}, 3},
		{"max price zero", catalog.ProductFilter{MaxPrice: price(0), Limit: 100}, 1},
		{"price range", catalog.ProductFilter{MinPrice: price(2500), MaxPrice: price(5000), Limit: 100}, 3},
		{"empty price range", catalog.ProductFilter{MinPrice: price(6000), MaxPrice: price(5000), Limit: 100}, 0},
		{"query", catalog.ProductFilter{Query: "chair", Limit: 100}, 4},
		{"query mixed case", catalog.ProductFilter{Query: "LaMp", Limit: 100}, 2},
		{"query no match", catalog.ProductFilter{Query: "sofa", Limit: 100}, 0},
		{"user and query", catalog.ProductFilter{UserID: 1, Query: "chair", Limit: 100}, 2},
		{"user and price", catalog.ProductFilter{UserID: 1, MinPrice: price(2000), Limit: 100}, 2},
		{"all filters", catalog.ProductFilter{UserID: 1, MinPrice: price(1000), MaxPrice: price(2500), Query: "CHAIR", Limit: 100}, 2},
		{"all filters and limit", catalog.ProductFilter{UserID: 1, MinPrice: price(1000), MaxPrice: price(2500), Query: "CHAIR", Limit: 1}, 1},
		{"after", catalog.ProductFilter{After: ps[4].ID, Limit: 100}, 4},
		{"after and user", catalog.ProductFilter{After: ps[4].ID, UserID: 2, Limit: 100}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := expect(ps, tt.filter)
			if len(want) != tt.want {
				t.Fatalf("fixture: %d products match, the table says %d", len(want), tt.want)
			}
			got := list(t, s, tt.filter)
			if !slices.Equal(ids(got), want) {
				t.Errorf("listed %+v: %v", tt.filter, names(got))
			}
			gotIDs, err := s.ListProductIDs(t.Context(), tt.filter)
			if err != nil {
				t.Fatalf("ListProductIDs(%+v): %v", tt.filter, err)
			}
			if gotIDs == nil || !slices.Equal(gotIDs, want) {
				t.Errorf("ListProductIDs(%+v) = %v, want %v", tt.filter, gotIDs, want)
			}
			for _, p := range got {
				if p.Images == nil {
					t.Errorf("product %s: Images is nil, want a non-nil slice", p.Name)
				}
			}
		})
	}
}

func testListPagination(t *testing.T, s catalog.ProductStore) {
	const n, limit = 50, 7
	var all []*catalog.Product
	for i := range n {
		p := newProduct(t, int64(1+i%3), fmt.Sprintf("product %02d", i), catalog.Price(i*100))
		p.CreatedAt = at(time.Duration(i) * time.Millisecond)
		create(t, s, p)
		all = append(all, p)
	}
	tests := []struct {
		name   string
		filter catalog.ProductFilter
	}{
		{"all", catalog.ProductFilter{Limit: limit}},
		{"one user", catalog.ProductFilter{UserID: 2, Limit: limit}},
		{"price range and query", catalog.ProductFilter{MinPrice: price(500), MaxPrice: price(4000), Query: "PRODUCT", Limit: limit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := expect(all, catalog.ProductFilter{UserID: tt.filter.UserID, MinPrice: tt.filter.MinPrice,
				MaxPrice: tt.filter.MaxPrice, Query: tt.filter.Query})
			var got []string
			f := tt.filter
			for page := 0; ; page++ {
				if page > n {
					t.Fatal("pagination does not end")
				}
				ps := list(t, s, f)
				if len(ps) > limit {
					t.Fatalf("page %d has %d products, limit %d", page, len(ps), limit)
				}
				got = append(got, ids(ps)...)
				if len(ps) < limit {
					break
				}
				f.After = ps[len(ps)-1].ID
			}
			if !slices.Equal(got, want) {
				t.Errorf("walked %d products, want %d newest first:\ngot  %v\nwant %v", len(got), len(want), got, want)
			}
		})
	}
	// Newest first: ids are UUIDv7, so the last created comes first.
	first := list(t, s, catalog.ProductFilter{Limit: 1})
	if len(first) != 1 || first[0].ID != all[n-1].ID {
		t.Errorf("first product = %v, want the newest %s", names(first), all[n-1].Name)
	}
}

func testListQueryUnicode(t *testing.T, s catalog.ProductStore) {
	for _, name := range []string{"Éclair au chocolat", "mini éclair", "Eclair sans accent", "ΣΟΦΙΑ", "Київ", "plain"} {
		create(t, s, newProduct(t, 1, name, 100))
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"upper finds lower", "ÉCLAIR", []string{"mini éclair", "Éclair au chocolat"}},
		{"lower finds upper", "éclair au", []string{"Éclair au chocolat"}},
		{"accents are significant", "eclair", []string{"Eclair sans accent"}},
		{"greek", "σοφ", []string{"ΣΟΦΙΑ"}},
		{"cyrillic", "КИЇВ", []string{"Київ"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(list(t, s, catalog.ProductFilter{Query: tt.query, Limit: 100}))
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("q=%q found %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func testListQueryLiteral(t *testing.T, s catalog.ProductStore) {
	for _, name := range []string{"100% cotton", "100 cotton", "a_b", "axb", `back\slash`, "it's"} {
		create(t, s, newProduct(t, 1, name, 100))
	}
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"percent", "%", []string{"100% cotton"}},
		{"percent in context", "0% c", []string{"100% cotton"}},
		{"underscore", "_", []string{"a_b"}},
		{"underscore in context", "a_b", []string{"a_b"}},
		{"backslash", `\`, []string{`back\slash`}},
		{"quote", "'", []string{"it's"}},
		// Names hold no control characters: such a query matches nothing
		// (and reaches no query parser: SQLite's FTS5 and PostgreSQL's
		// text refuse NUL).
		{"NUL", "co\x00tton", nil},
		{"NUL alone", "\x00", nil},
		{"other control character", "cot\x01", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := names(list(t, s, catalog.ProductFilter{Query: tt.query, Limit: 100}))
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("q=%q found %q, want %q", tt.query, got, tt.want)
			}
		})
	}
}

func testListIncludesImages(t *testing.T, s catalog.ProductStore) {
	with := newProduct(t, 1, "with images", 1)
	without := newProduct(t, 1, "without images", 1)
	other := newProduct(t, 1, "other", 1)
	for _, p := range []*catalog.Product{with, without, other} {
		create(t, s, p)
	}
	want := []*catalog.Image{newImage(t, with.ID, at(0)), newImage(t, with.ID, at(time.Second))}
	cur := with
	for _, img := range want {
		cur = next(cur, time.Second)
		if err := s.AddImage(t.Context(), cur, img); err != nil {
			t.Fatalf("AddImage: %v", err)
		}
	}
	if err := s.AddImage(t.Context(), next(other, time.Second), newImage(t, other.ID, at(0))); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	got := list(t, s, catalog.ProductFilter{Limit: 10})
	if len(got) != 3 {
		t.Fatalf("listed %d products, want 3", len(got))
	}
	counts := map[string]int{}
	for _, p := range got {
		if p.Images == nil {
			t.Errorf("%s: Images is nil", p.Name)
		}
		counts[p.Name] = len(p.Images)
		if p.ID == with.ID {
			if len(p.Images) != 2 {
				t.Fatalf("%s has %d images, want 2", p.Name, len(p.Images))
			}
			for i := range want {
				checkImage(t, p.Images[i], *want[i])
			}
			if p.Version != 3 {
				t.Errorf("%s: Version = %d, want 3", p.Name, p.Version)
			}
		}
	}
	if want := map[string]int{"with images": 2, "without images": 0, "other": 1}; !reflect.DeepEqual(counts, want) {
		t.Errorf("images per product = %v, want %v", counts, want)
	}
}

func testAddImage(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	img := newImage(t, p.ID, at(time.Second))
	img.Variants = nil // stores hand back a non-nil empty slice
	// An import, fetched later from where it came from.
	img.SourceURL = "https://shop.example/images/chair.png?size=large&v=2"
	u := next(p, 2*time.Second)
	if err := s.AddImage(t.Context(), u, img); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	got := get(t, s, p.ID)
	checkProduct(t, got, u)
	if len(got.Images) != 1 {
		t.Fatalf("product has %d images, want 1", len(got.Images))
	}
	checkImage(t, got.Images[0], *img)
	if got.Images[0].Error != nil || got.Images[0].ProcessedAt != nil {
		t.Errorf("new image has error %v, processed at %v; want neither", got.Images[0].Error, got.Images[0].ProcessedAt)
	}
}

func testAddImageConflicts(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	first := newImage(t, p.ID, at(0))
	if err := s.AddImage(t.Context(), next(p, time.Second), first); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	t.Run("stale version", func(t *testing.T) {
		img := newImage(t, p.ID, at(0))
		err := s.AddImage(t.Context(), next(p, time.Second), img) // version 2 is taken
		if !catalog.IsVersionConflict(err) {
			t.Fatalf("AddImage(stale) error = %v, want a version conflict", err)
		}
		got := get(t, s, p.ID)
		if len(got.Images) != 1 || got.Version != 2 {
			t.Errorf("after a stale AddImage: %d images, version %d; want 1 and 2", len(got.Images), got.Version)
		}
	})
	t.Run("unknown product", func(t *testing.T) {
		ghost := newProduct(t, 1, "Ghost", 1)
		ghost.Version = 2
		err := s.AddImage(t.Context(), ghost, newImage(t, ghost.ID, at(0)))
		if !catalog.IsNotFound(err) {
			t.Fatalf("AddImage(unknown product) error = %v, want not found", err)
		}
	})
}

func testSaveImage(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	img := newImage(t, p.ID, at(0))
	cur := next(p, time.Second)
	if err := s.AddImage(t.Context(), cur, img); err != nil {
		t.Fatalf("AddImage: %v", err)
	}
	processed := at(time.Minute + 123*time.Microsecond)
	steps := []struct {
		name   string
		change func(img *catalog.Image)
	}{
		{"processing", func(img *catalog.Image) {
			img.Status = catalog.StatusProcessing
		}},
		{"ready with variants", func(img *catalog.Image) {
			img.Status, img.ProcessedAt = catalog.StatusReady, &processed
			img.Original.Width, img.Original.Height, img.Original.Frames = 1601, 1201, 3
			img.Placeholder, img.DominantColor, img.Animated, img.RecipeVersion = "LEHV6nWB2yk8pyo0adR*.7kCMdnj", "#a1b2c3", true, 2
			img.Variants = []catalog.Variant{
				{Name: "thumb", Format: "webp", Width: 200, Height: 150, Bytes: 4321, URL: "https://cdn.example/" + img.ID + "/thumb.webp"},
				{Name: "large", Format: "avif", Width: 1600, Height: 1200, Bytes: 98765, URL: "https://cdn.example/" + img.ID + "/large.avif"},
			}
		}},
		{"failed", func(img *catalog.Image) {
			img.Status = catalog.StatusFailed
			img.Error = &catalog.ImageError{Code: catalog.FailTooManyPixels, Detail: "12000×12000 is over 50 megapixels"}
			img.Variants = []catalog.Variant{}
		}},
		{"failed, retryable", func(img *catalog.Image) {
			img.Error = &catalog.ImageError{Code: catalog.FailStorageUnavailable, Detail: "gave up after 5 attempts", Retryable: true}
		}},
		{"reprocessed", func(img *catalog.Image) {
			img.Status, img.Error, img.ProcessedAt, img.Variants = catalog.StatusPending, nil, nil, nil
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change(img)
			cur = next(cur, time.Minute)
			if err := s.SaveImage(t.Context(), cur, img); err != nil {
				t.Fatalf("SaveImage: %v", err)
			}
			got := get(t, s, p.ID)
			checkProduct(t, got, cur)
			if len(got.Images) != 1 {
				t.Fatalf("product has %d images, want 1", len(got.Images))
			}
			checkImage(t, got.Images[0], *img)
		})
	}
	t.Run("stale version", func(t *testing.T) {
		stale := *cur // the stored version, not one more
		img.Status = catalog.StatusReady
		if err := s.SaveImage(t.Context(), &stale, img); !catalog.IsVersionConflict(err) {
			t.Fatalf("SaveImage(stale) error = %v, want a version conflict", err)
		}
		if got := get(t, s, p.ID); got.Images[0].Status != catalog.StatusPending {
			t.Errorf("a stale SaveImage changed the image: status %s", got.Images[0].Status)
		}
	})
}

func testSaveImageUnknown(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	err := s.SaveImage(t.Context(), next(p, time.Second), newImage(t, p.ID, at(0)))
	if !catalog.IsNotFound(err) {
		t.Fatalf("SaveImage(unknown image) error = %v, want not found", err)
	}
	if got := get(t, s, p.ID); got.Version != 1 {
		t.Errorf("a failed SaveImage bumped the version to %d", got.Version)
	}
}

func testImagesOrdered(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	offsets := []time.Duration{2 * time.Second, time.Second, 3 * time.Second, time.Second}
	var want []string
	cur := p
	for _, d := range offsets {
		img := newImage(t, p.ID, at(d))
		cur = next(cur, d)
		if err := s.AddImage(t.Context(), cur, img); err != nil {
			t.Fatalf("AddImage: %v", err)
		}
		want = append(want, img.ID)
	}
	// In the order they were added, whatever their creation times: each
	// new image goes last in the gallery.
	checkGallery(t, get(t, s, p.ID), want)
}

// checkGallery checks that p's images are those of ids in that order, each
// with its index as Position.
func checkGallery(t *testing.T, p *catalog.Product, ids []string) {
	t.Helper()
	var got []string
	for i, img := range p.Images {
		got = append(got, img.ID)
		if img.Position != i {
			t.Errorf("image %d (%s) has position %d", i, img.ID, img.Position)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("images in order %v, want %v", got, ids)
	}
}

// addImages adds n images to p and returns its last version and their ids.
func addImages(t *testing.T, s catalog.ProductStore, p *catalog.Product, n int) (*catalog.Product, []string) {
	t.Helper()
	cur := p
	var ids []string
	for i := range n {
		img := newImage(t, p.ID, at(time.Duration(i)*time.Second))
		cur = next(cur, time.Duration(i)*time.Second)
		if err := s.AddImage(t.Context(), cur, img); err != nil {
			t.Fatalf("AddImage: %v", err)
		}
		if img.Position != i {
			t.Errorf("AddImage set position %d on image %d, want %d", img.Position, i, i)
		}
		ids = append(ids, img.ID)
	}
	return cur, ids
}

func testDeleteImage(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	cur, ids := addImages(t, s, p, 4)
	cur = next(cur, time.Minute)
	if err := s.DeleteImage(t.Context(), cur, ids[1]); err != nil {
		t.Fatalf("DeleteImage: %v", err)
	}
	got := get(t, s, p.ID)
	checkProduct(t, got, cur)
	// The images after it moved up one place.
	checkGallery(t, got, []string{ids[0], ids[2], ids[3]})

	t.Run("again", func(t *testing.T) {
		err := s.DeleteImage(t.Context(), next(cur, time.Hour), ids[1])
		if !catalog.IsNotFound(err) {
			t.Fatalf("DeleteImage(deleted image) error = %v, want not found", err)
		}
		if got := get(t, s, p.ID); got.Version != cur.Version {
			t.Errorf("a failed DeleteImage bumped the version to %d", got.Version)
		}
	})
	t.Run("image of another product", func(t *testing.T) {
		other := newProduct(t, 1, "Table", 1)
		create(t, s, other)
		_, otherIDs := addImages(t, s, other, 1)
		err := s.DeleteImage(t.Context(), next(cur, time.Hour), otherIDs[0])
		if !catalog.IsNotFound(err) {
			t.Fatalf("DeleteImage(another product's image) error = %v, want not found", err)
		}
		if got := get(t, s, other.ID); len(got.Images) != 1 {
			t.Errorf("the other product has %d images, want 1", len(got.Images))
		}
	})
	t.Run("stale version", func(t *testing.T) {
		stale := *cur
		if err := s.DeleteImage(t.Context(), &stale, ids[0]); !catalog.IsVersionConflict(err) {
			t.Fatalf("DeleteImage(stale) error = %v, want a version conflict", err)
		}
		checkGallery(t, get(t, s, p.ID), []string{ids[0], ids[2], ids[3]})
	})
	t.Run("a new image goes last", func(t *testing.T) {
		img := newImage(t, p.ID, at(0))
		cur = next(cur, time.Hour)
		if err := s.AddImage(t.Context(), cur, img); err != nil {
			t.Fatalf("AddImage: %v", err)
		}
		if img.Position != 3 {
			t.Errorf("AddImage set position %d, want 3", img.Position)
		}
		checkGallery(t, get(t, s, p.ID), []string{ids[0], ids[2], ids[3], img.ID})
	})
}

func testSaveGallery(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	cur, ids := addImages(t, s, p, 3)
	stored := get(t, s, p.ID)
	cur = next(cur, time.Minute)
	cur.Images = []catalog.Image{stored.Images[2], stored.Images[0], stored.Images[1]}
	cur.Images[0].Alt = "Oak chair, seen from the front — «ß» 🪑"
	cur.Images[2].Alt = ""
	cur.Images[1].FocalPoint = &catalog.FocalPoint{X: 0.25, Y: 0.8125}
	stored.Images[1].Alt = "will not be kept"
	if err := s.SaveGallery(t.Context(), cur, nil); err != nil {
		t.Fatalf("SaveGallery: %v", err)
	}
	got := get(t, s, p.ID)
	checkProduct(t, got, cur)
	checkGallery(t, got, []string{ids[2], ids[0], ids[1]})
	if f := got.Images[1].FocalPoint; f == nil || *f != *cur.Images[1].FocalPoint || got.Images[0].FocalPoint != nil {
		t.Errorf("focal points %v and %v, want %v and none", got.Images[1].FocalPoint, got.Images[0].FocalPoint, cur.Images[1].FocalPoint)
	}
	if got.Images[0].Alt != cur.Images[0].Alt || got.Images[1].Alt != "" || got.Images[2].Alt != "" {
		t.Errorf("alt texts %q, %q, %q; want %q, \"\", \"\"", got.Images[0].Alt, got.Images[1].Alt, got.Images[2].Alt, cur.Images[0].Alt)
	}

	t.Run("SaveImage keeps the gallery", func(t *testing.T) {
		img := got.Images[0]
		img.Status, img.Alt, img.Position = catalog.StatusProcessing, "not the gallery's", 2
		cur = next(cur, time.Hour)
		if err := s.SaveImage(t.Context(), cur, &img); err != nil {
			t.Fatalf("SaveImage: %v", err)
		}
		after := get(t, s, p.ID)
		checkGallery(t, after, []string{ids[2], ids[0], ids[1]})
		if after.Images[0].Alt != got.Images[0].Alt || after.Images[0].Status != catalog.StatusProcessing {
			t.Errorf("after SaveImage: alt %q status %s; want %q and processing", after.Images[0].Alt, after.Images[0].Status, got.Images[0].Alt)
		}
	})
	t.Run("not every image", func(t *testing.T) {
		short := next(cur, 2*time.Hour)
		short.Images = got.Images[:2]
		if err := s.SaveGallery(t.Context(), short, nil); !catalog.IsNotFound(err) {
			t.Fatalf("SaveGallery(two of three images) error = %v, want not found", err)
		}
		checkGallery(t, get(t, s, p.ID), []string{ids[2], ids[0], ids[1]})
	})
	t.Run("a foreign image", func(t *testing.T) {
		foreign := next(cur, 2*time.Hour)
		foreign.Images = slices.Clone(got.Images)
		foreign.Images[1] = *newImage(t, p.ID, at(0))
		if err := s.SaveGallery(t.Context(), foreign, nil); !catalog.IsNotFound(err) {
			t.Fatalf("SaveGallery(a foreign image) error = %v, want not found", err)
		}
		if got := get(t, s, p.ID); got.Version != cur.Version {
			t.Errorf("a failed SaveGallery bumped the version to %d", got.Version)
		}
	})
	t.Run("stale version", func(t *testing.T) {
		stale := *cur
		stale.Images = got.Images
		if err := s.SaveGallery(t.Context(), &stale, nil); !catalog.IsVersionConflict(err) {
			t.Fatalf("SaveGallery(stale) error = %v, want a version conflict", err)
		}
	})
}

func testConcurrentUpdate(t *testing.T, s catalog.ProductStore) {
	p := newProduct(t, 1, "Chair", 1)
	create(t, s, p)
	const writers = 8
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			u := next(p, time.Second)
			u.Name = fmt.Sprintf("writer %d", i)
			<-start
			errs[i] = s.UpdateProduct(context.WithoutCancel(t.Context()), u)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("writers %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !catalog.IsVersionConflict(err):
			t.Errorf("writer %d: error = %v, want a version conflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	if got := get(t, s, p.ID); got.Name != fmt.Sprintf("writer %d", winner) || got.Version != 2 {
		t.Errorf("stored %q version %d, want writer %d's at version 2", got.Name, got.Version, winner)
	}
}

func testPing(t *testing.T, s catalog.ProductStore) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// testListMany lists 1,500 products by common words (in about a third of
// the names), rare ones (in a few) and ones of fewer than three
// characters, page after page, so that every way a store may find them
// (walking the newest rows, a text index, a scan) is compared with what
// the filter means.
func testListMany(t *testing.T, s catalog.ProductStore) {
	words := []string{"chair", "table", "lamp"}
	var ps []*catalog.Product
	for i := range 1500 {
		name := fmt.Sprintf("%s no. %d", words[i%3], i)
		if i%500 == 7 {
			name = fmt.Sprintf("Rare Quokka %d", i)
		}
		p := newProduct(t, int64(1+i%7), name, catalog.Price(i*13%5000))
		create(t, s, p)
		ps = append(ps, p)
	}
	for _, f := range []catalog.ProductFilter{
		{Query: "chair", Limit: 20},
		{Query: "quokka", Limit: 20},
		{Query: "quokka 5", Limit: 2},
		{Query: "no. 1", Limit: 50},
		{Query: "7", Limit: 30},
		{Query: "zebra", Limit: 20},
		{Query: "qu", Limit: 20},
		{Query: "lamp", MinPrice: price(100), MaxPrice: price(900), Limit: 10},
		{Query: "table", UserID: 3, Limit: 10},
		{MinPrice: price(1000), MaxPrice: price(1200), Limit: 25},
		{Query: "a", Limit: 100},
	} {
		walked := 0
		for page := 0; page < 200; page++ {
			want := expect(ps, f)
			got, err := s.ListProductIDs(t.Context(), f)
			if err != nil {
				t.Fatalf("ListProductIDs(%+v): %v", f, err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ListProductIDs(%+v) = %d ids %v, want %d %v", f, len(got), got, len(want), want)
			}
			walked += len(got)
			if len(got) < f.Limit {
				break
			}
			f.After = got[len(got)-1]
		}
		f.After = ""
		if n := len(expect(ps, catalog.ProductFilter{Query: f.Query, UserID: f.UserID, MinPrice: f.MinPrice, MaxPrice: f.MaxPrice})); walked != n {
			t.Errorf("%+v: the pages held %d products, %d match", f, walked, n)
		}
	}
}

// testListAfterRename finds a product by its new name and not its old one,
// and lists see every write made since they were last asked, whatever a
// store keeps between them.
func testListAfterRename(t *testing.T, s catalog.ProductStore) {
	listed := func(f catalog.ProductFilter) []string {
		t.Helper()
		got, err := s.ListProductIDs(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	p := newProduct(t, 1, "Velvet armchair", 100)
	create(t, s, p)
	armchairs := catalog.ProductFilter{Query: "armchair", Limit: 10}
	if got := listed(armchairs); !slices.Equal(got, []string{p.ID}) {
		t.Fatalf("q=armchair: %v", got)
	}
	all := catalog.ProductFilter{Limit: 10}
	if got := listed(all); !slices.Equal(got, []string{p.ID}) {
		t.Fatalf("all: %v", got)
	}
	q := newProduct(t, 1, "Plain stool", 100)
	create(t, s, q)
	if got := listed(all); !slices.Equal(got, []string{q.ID, p.ID}) {
		t.Errorf("all after a create: %v", got)
	}
	n := next(p, time.Second)
	n.Name = "Linen sofa"
	if err := s.UpdateProduct(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	for query, want := range map[string][]string{"armchair": {}, "linen sofa": {p.ID}, "sofa": {p.ID}, "stool": {q.ID}} {
		got, err := s.ListProductIDs(t.Context(), catalog.ProductFilter{Query: query, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("q=%s: %v, want %v", query, got, want)
		}
	}
	cheap := catalog.ProductFilter{MaxPrice: price(150), Limit: 10}
	if got := listed(cheap); !slices.Equal(got, []string{q.ID, p.ID}) {
		t.Errorf("max_price 1.50: %v", got)
	}
	m := next(q, 2*time.Second)
	m.Price = 200
	if err := s.UpdateProduct(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if got := listed(cheap); !slices.Equal(got, []string{p.ID}) {
		t.Errorf("max_price 1.50 after a price change: %v", got)
	}
	if err := s.DeleteProduct(t.Context(), p.ID); err != nil {
		t.Fatal(err)
	}
	if got := listed(catalog.ProductFilter{Query: "sofa", Limit: 10}); len(got) != 0 {
		t.Errorf("q=sofa after the delete: %v", got)
	}
	if got := listed(all); !slices.Equal(got, []string{q.ID}) {
		t.Errorf("all after the delete: %v", got)
	}
}

// testGetProducts loads products by id, with their images, leaving out
// ids of no product.
func testGetProducts(t *testing.T, s catalog.ProductStore) {
	ps := catalogFixture(t, s)
	img := newImage(t, ps[2].ID, at(time.Minute))
	if err := s.AddImage(t.Context(), next(ps[2], time.Minute), img); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetProducts(t.Context(), []string{ps[2].ID, NewID(t), ps[5].ID, "not-an-id"})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || len(got) != 2 {
		t.Fatalf("GetProducts = %d products, want 2", len(got))
	}
	byID := map[string]*catalog.Product{}
	for _, p := range got {
		byID[p.ID] = p
	}
	a, b := byID[ps[2].ID], byID[ps[5].ID]
	if a == nil || b == nil {
		t.Fatalf("GetProducts = %v", names(got))
	}
	if a.Name != ps[2].Name || a.Version != ps[2].Version+1 || len(a.Images) != 1 || a.Images[0].ID != img.ID {
		t.Errorf("product with an image: %+v", a)
	}
	if b.Images == nil || len(b.Images) != 0 || b.Price != ps[5].Price || !b.CreatedAt.Equal(ps[5].CreatedAt) {
		t.Errorf("product without images: %+v", b)
	}
	if none, err := s.GetProducts(t.Context(), nil); err != nil || none == nil || len(none) != 0 {
		t.Errorf("GetProducts(nil) = %v, %v", none, err)
	}
}

func testSKU(t *testing.T, s catalog.ProductStore) {
	a := newProduct(t, 1, "Chair", 1)
	a.SKU = "CH-001 «oak»"
	create(t, s, a)
	if got := get(t, s, a.ID); got.SKU != a.SKU {
		t.Errorf("SKU %q, want %q", got.SKU, a.SKU)
	}
	if id, err := s.ProductIDBySKU(t.Context(), 1, a.SKU); err != nil || id != a.ID {
		t.Errorf("ProductIDBySKU = %q, %v; want %s", id, err, a.ID)
	}
	for _, tt := range []struct {
		owner int64
		sku   string
	}{{2, a.SKU}, {1, "CH-002"}, {1, "ch-001 «oak»"}} {
		if _, err := s.ProductIDBySKU(t.Context(), tt.owner, tt.sku); !catalog.IsNotFound(err) {
			t.Errorf("ProductIDBySKU(%d, %q) error = %v, want not found", tt.owner, tt.sku, err)
		}
	}
	// Another owner may use it; the same owner may not.
	other := newProduct(t, 2, "Chair", 1)
	other.SKU = a.SKU
	create(t, s, other)
	clash := newProduct(t, 1, "Table", 1)
	clash.SKU = a.SKU
	err := s.CreateProduct(t.Context(), clash)
	if catalog.ErrorKind(err) != catalog.KindConflict || !strings.Contains(err.Error(), "sku_taken") {
		t.Fatalf("CreateProduct with a taken SKU: %v, want conflict sku_taken", err)
	}
	// Products without a SKU never clash.
	for range 2 {
		create(t, s, newProduct(t, 1, "No SKU", 1))
	}
	b := newProduct(t, 1, "Table", 1)
	b.SKU = "TB-1"
	create(t, s, b)
	u := next(b, time.Second)
	u.SKU = a.SKU
	err = s.UpdateProduct(t.Context(), u)
	if catalog.ErrorKind(err) != catalog.KindConflict || !strings.Contains(err.Error(), "sku_taken") {
		t.Fatalf("UpdateProduct to a taken SKU: %v, want conflict sku_taken", err)
	}
	u.SKU = ""
	if err := s.UpdateProduct(t.Context(), u); err != nil {
		t.Fatalf("UpdateProduct clearing the SKU: %v", err)
	}
	if got := get(t, s, b.ID); got.SKU != "" {
		t.Errorf("cleared SKU reads %q", got.SKU)
	}
	if _, err := s.ProductIDBySKU(t.Context(), 1, "TB-1"); !catalog.IsNotFound(err) {
		t.Errorf("the cleared SKU still finds a product: %v", err)
	}
}
