package sqlrows

import (
	"slices"
	"strings"
	"time"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Due is a job a relay claimed (ClaimDue), with the time it fell due.
type Due struct {
	Job catalog.Job
	At  time.Time
}

// InDueOrder returns the jobs of claimed in the order they fell due, ties
// by image id: the claim's UPDATE … RETURNING keeps no order, while a
// relay publishes the job that waited longest first. It is never nil.
func InDueOrder(claimed []Due) []catalog.Job {
	slices.SortFunc(claimed, func(a, b Due) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.Job.ImageID, b.Job.ImageID)
	})
	jobs := make([]catalog.Job, 0, len(claimed))
	for _, d := range claimed {
		jobs = append(jobs, d.Job)
	}
	return jobs
}

// RepublishBefore is the publication time at or before which ClaimDue, at
// now, publishes again a job that no delivery claimed since (published and
// never leased): redeliver after its publication, its message was most
// likely lost by the broker (a broker wiped or replaced, retention
// expired, an unclean leader election), and without it the job would wait
// for ever, its image pending. A message that arrives after all is a
// duplicate, which ClaimJob turns away. ok is false when redeliver is not
// positive: published jobs then go out again only when a delivery's lease
// runs out.
func RepublishBefore(now time.Time, redeliver time.Duration) (before time.Time, ok bool) {
	if redeliver <= 0 {
		return time.Time{}, false
	}
	return now.Add(-redeliver), true
}

// ClaimMiss is ClaimJob's answer when its claim matched no row: NotFound
// when the job is gone (exists is false), else ErrJobBusy, as another
// delivery holds the job or it is not due.
func ClaimMiss(imageID string, exists bool) error {
	if !exists {
		return catalog.NotFound("job of image %s", imageID)
	}
	return catalog.ErrJobBusy
}

// Claimed is a job as a receiver's claim returned it (ClaimedColumns): the
// job and the attempt the claim counted. The stores' deliveries embed it,
// and with it the Job and Attempt of catalog.Delivery.
type Claimed struct {
	job     catalog.Job
	attempt int
}

// Dest returns the scan destinations of ClaimedColumns.
func (c *Claimed) Dest() []any {
	return []any{&c.job.ImageID, &c.job.ProductID, &c.attempt, &c.job.TraceParent}
}

// Job is the job claimed.
func (c *Claimed) Job() catalog.Job { return c.job }

// Attempt is the attempt that the claim counted, 1 for the first.
func (c *Claimed) Attempt() int { return c.attempt }
