package actors_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/cluster"
	"github.com/vitrine-dev/vitrine/persistence/localfs"
	"github.com/vitrine-dev/vitrine/persistence/memory"
	"github.com/vitrine-dev/vitrine/persistence/sqlite"
)

// afterLoad is the store of a grain that, once, right after it loaded the
// product id, lets another writer run (then) before the grain goes on.
type afterLoad struct {
	*sqlite.DB
	id   string
	once sync.Once
	then func()
}

func (s *afterLoad) GetProduct(ctx context.Context, id string) (*catalog.Product, error) {
	p, err := s.DB.GetProduct(ctx, id)
	if id == s.id {
		s.once.Do(s.then)
	}
	return p, err
}

func newUUID() string { return uuid.Must(uuid.NewV7()).String() }

// twoOwners is two nodes of one product catalog (one database, one cache)
// whose views of the membership both place every product on themselves,
// as while a node joins: the joining node places a product on itself
// before its old owner has seen the join, and each node's grain of the
// product passes its Owns check.
type twoOwners struct {
	db    *sqlite.DB
	cache *memory.Cache
	// old is the product's owner before the join; joined is the new
	// node, its grains' store wrapped by afterLoad.
	old, joined *actors.Service
	race        *afterLoad
}

func newTwoOwners(t *testing.T, newID func() string) *twoOwners {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := localfs.New(filepath.Join(dir, "files"), "http://test/media")
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	o := &twoOwners{db: db, cache: memory.New(100), race: &afterLoad{DB: db, then: func() {}}}
	start := func(store actors.GrainStore) *actors.Service {
		node, err := cluster.Start(cluster.Config{}, log, actors.NewProductKind(actors.ProductDeps{Store: store, Cache: o.cache, Blobs: blobs, Log: log}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(node.Stop)
		return actors.NewService(node, o.cache, db, newID, 5*time.Second, nil)
	}
	o.old, o.joined = start(db), start(o.race)
	return o
}

// TestGrainForgetsAProductAnotherGrainDeleted: while two nodes both place
// a product on themselves, the new owner's grain loads it, the old
// owner's grain deletes it (204), and the new owner's grain then writes
// it (a DELETE sent again, a PATCH): the store answers that the product
// is gone. The grain must forget the product, not answer it from memory
// to every read after (the cache holds its deletion, so every read
// reaches the grain): TestKubeCluster's deleted product read back 200.
func TestGrainForgetsAProductAnotherGrainDeleted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(s *actors.Service, id string) error
	}{
		{"DELETE", func(s *actors.Service, id string) error { return s.Delete(context.Background(), id, "", 0) }},
		{"PATCH", func(s *actors.Service, id string) error {
			_, err := s.Patch(context.Background(), id, []byte(`{"name":"late"}`), "", 0)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newTwoOwners(t, newUUID)
			p, err := o.old.Create(context.Background(), []byte(`{"name":"doomed","price":"1","user_id":1}`), 0)
			if err != nil {
				t.Fatal(err)
			}
			o.race.id = p.ID
			o.race.then = func() {
				if err := o.old.Delete(context.Background(), p.ID, "", 0); err != nil {
					t.Errorf("the old owner's DELETE: %v", err)
				}
			}
			if err := tc.write(o.joined, p.ID); err != nil && !catalog.IsNotFound(err) {
				t.Errorf("the new owner's %s after the delete = %v, want nil or NotFound", tc.name, err)
			}
			if _, err := o.db.GetProduct(context.Background(), p.ID); !catalog.IsNotFound(err) {
				t.Fatalf("the store after the delete: %v, want NotFound", err)
			}
			for i := range 2 {
				for name, s := range map[string]*actors.Service{"new owner": o.joined, "old owner": o.old} {
					if got, err := s.Get(context.Background(), p.ID); !catalog.IsNotFound(err) {
						t.Errorf("read %d on the %s of the deleted product = %s %q %v, want NotFound", i+1, name, got.Source, got.Body, err)
					}
				}
			}
		})
	}
}
