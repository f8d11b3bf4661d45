package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/actors/actorspb"
	"github.com/vitrine-dev/vitrine/catalog"
	"github.com/vitrine-dev/vitrine/cluster"
)

// lostAnswers delivers every command to the real grain but loses the
// answer to those of op, as a grain that committed the command and then
// did not answer in time: the cluster says ErrInDoubt. With limit > 0
// only the first limit answers are lost; between, when set, runs after
// each lost answer (another client's write).
type lostAnswers struct {
	*cluster.Node
	op      actorspb.ProductCommand_Op
	limit   int
	between func()

	mu   sync.Mutex
	sent []*actorspb.ProductCommand // the commands whose answer was lost
}

func (g *lostAnswers) Request(ctx context.Context, identity, kind string, msg any, timeout time.Duration) (any, error) {
	res, err := g.Node.Request(ctx, identity, kind, msg, timeout)
	cmd, ok := msg.(*actorspb.ProductCommand)
	if err != nil || !ok || cmd.Op != g.op {
		return res, err
	}
	g.mu.Lock()
	if g.limit > 0 && len(g.sent) >= g.limit {
		g.mu.Unlock()
		return res, err
	}
	g.sent = append(g.sent, cmd)
	g.mu.Unlock()
	if g.between != nil {
		g.between()
	}
	return nil, fmt.Errorf("%w: no answer from %s/%s within %s", cluster.ErrInDoubt, kind, identity, timeout)
}

// TestUploadKeepsTheOriginalWhenTheOutcomeIsUnknown: an ADD_IMAGE that the
// grain committed but whose answer was lost fails the upload with 503, and
// must leave the original in place: the recorded image's job reads it and
// ends ready, and the client's retry (the same bytes) is deduplicated onto
// that image, not onto one whose original is gone.
func TestUploadKeepsTheOriginalWhenTheOutcomeIsUnknown(t *testing.T) {
	f := newFixture(t, &processor{fn: ok}, nil, 3)
	productID := f.product()
	grains := &lostAnswers{Node: f.node, op: actorspb.ProductCommand_ADD_IMAGE}
	svc := actors.NewService(grains, f.cache, f.db, func() string { return uuid.Must(uuid.NewV7()).String() }, 200*time.Millisecond, nil)
	uploads := actors.NewUploads(svc, header{}, f.blobs, f.db, actors.UploadLimits{}, time.Now)

	data := []byte("bytes whose answer is lost")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, _, _, err := uploads.Upload(ctx, productID, data, 0)
	cancel()
	if catalog.ErrorKind(err) != catalog.KindUnavailable {
		t.Fatalf("Upload with its answer lost = %v, want Unavailable", err)
	}
	grains.mu.Lock()
	if len(grains.sent) == 0 {
		grains.mu.Unlock()
		t.Fatal("no ADD_IMAGE was sent")
	}
	var img catalog.Image
	if err := json.Unmarshal(grains.sent[0].Body, &img); err != nil {
		t.Fatal(err)
	}
	grains.mu.Unlock()

	if _, err := f.blobs.Get(context.Background(), catalog.OriginalKey(productID, img.ID)); err != nil {
		t.Errorf("the original of image %s, which the grain recorded, was removed: %v", img.ID, err)
	}
	got := f.wait(&img)
	if got.Status != catalog.StatusReady {
		t.Errorf("the recorded image ended %s (%+v), want ready", got.Status, got.Error)
	}
	again, _, existing, err := f.uploads.Upload(context.Background(), productID, data, 0)
	if err != nil || !existing || again.ID != img.ID {
		t.Fatalf("retry: %v existing %v err %v, want image %s", again, existing, err, img.ID)
	}
}

// TestInDoubtWriteWithoutIfMatchIsNotSentAgain: a PUT or PATCH without
// If-Match whose first delivery was applied but whose answer was lost must
// not be sent again blindly: another client wrote in between, and a second
// delivery would overwrite that write. The caller gets 503 and the other
// client's write stands.
func TestInDoubtWriteWithoutIfMatchIsNotSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    actorspb.ProductCommand_Op
		write func(s *actors.Service, id string) error
	}{
		{"PUT", actorspb.ProductCommand_REPLACE, func(s *actors.Service, id string) error {
			_, err := s.Replace(context.Background(), id, []byte(`{"name":"mine","price":"1","user_id":1}`), "", 0)
			return err
		}},
		{"PATCH", actorspb.ProductCommand_PATCH, func(s *actors.Service, id string) error {
			_, err := s.Patch(context.Background(), id, []byte(`{"name":"mine"}`), "", 0)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, &processor{fn: ok}, nil, 3)
			id := f.product()
			grains := &lostAnswers{Node: f.node, op: tc.op, limit: 1, between: func() {
				if _, err := f.service.Patch(context.Background(), id, []byte(`{"name":"theirs"}`), "", 0); err != nil {
					t.Errorf("the other client's write: %v", err)
				}
			}}
			svc := actors.NewService(grains, f.cache, f.db, func() string { return uuid.Must(uuid.NewV7()).String() }, time.Second, nil)

			err := tc.write(svc, id)
			var e *catalog.Error
			if !errors.As(err, &e) || e.Kind != catalog.KindUnavailable || e.Code != "outcome_unknown" || !errors.Is(err, actors.ErrOutcomeUnknown) {
				t.Errorf("the write whose answer was lost = %v, want Unavailable outcome_unknown", err)
			}
			p, err := f.db.GetProduct(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "theirs" {
				t.Errorf("name %q: the write was sent again over the other client's; want %q", p.Name, "theirs")
			}
		})
	}
}
