package actors

import (
	"context"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Admin lets operators see image jobs that failed for good and run them
// again.
type Admin struct {
	service *Service
	letters catalog.DeadLetters
}

// NewAdmin returns Admin over a service and the store's dead letters.
func NewAdmin(s *Service, letters catalog.DeadLetters) *Admin {
	return &Admin{service: s, letters: letters}
}

// ListDeadLetters returns dead letters, newest first.
func (a *Admin) ListDeadLetters(ctx context.Context, limit int) ([]catalog.DeadLetter, error) {
	return a.letters.ListDeadLetters(ctx, limit)
}

// ReplayDeadLetter queues a dead-lettered job again and puts its image back
// to pending.
func (a *Admin) ReplayDeadLetter(ctx context.Context, imageID string) (catalog.Job, error) {
	if !catalog.ValidID(imageID) {
		return catalog.Job{}, catalog.NotFound("no dead letter for image %q", imageID)
	}
	job, err := a.letters.ReviveDeadLetter(ctx, imageID)
	if err != nil {
		return catalog.Job{}, err
	}
	if _, err := a.service.reprocess(ctx, job.ProductID, job.ImageID, 0, true); err != nil && !catalog.IsNotFound(err) {
		return job, err
	}
	return job, nil
}
