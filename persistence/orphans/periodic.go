package orphans

import (
	"context"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// Lease is the store's named lease that one process holds while it sweeps.
type Lease interface {
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
}

// leaseName names the sweep's lease.
const leaseName = "orphan-sweep"

// Periodic sweeps every Interval, on one of the processes sharing a store
// at a time: each tick, the process that takes the lease for the interval
// sweeps, and the others find it taken.
type Periodic struct {
	Images   Images
	Blobs    Blobs
	Lease    Lease
	Holder   string // this process, unique among those sharing the store
	Interval time.Duration
	Options  Options
	Log      *zap.Logger
}

// Run sweeps every Interval (the first time after a random part of it, so
// that processes started together do not all try at once) until ctx ends.
func (p *Periodic) Run(ctx context.Context) {
	wait := p.Interval/2 + rand.N(p.Interval/2+1) // #nosec G404 -- jitter, not security
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		wait = p.Interval
		p.tick(ctx)
	}
}

// tick sweeps if this process takes the lease.
func (p *Periodic) tick(ctx context.Context) {
	mine, err := p.Lease.TryLease(ctx, leaseName, p.Holder, p.Interval)
	if err != nil {
		p.Log.Warn("take the orphan sweep's lease", zap.Error(err))
		return
	}
	if !mine {
		return
	}
	start := time.Now()
	st, err := Sweep(ctx, p.Images, p.Blobs, p.Options)
	fields := []zap.Field{zap.Int64("files", st.Files), zap.Int64("orphans", st.Orphans), zap.Int64("removed", st.Removed),
		zap.Int64("young", st.Young), zap.Int64("unrecognized", st.Unrecognized), zap.Duration("duration", time.Since(start))}
	if err != nil && ctx.Err() == nil {
		p.Log.Warn("orphan sweep", append(fields, zap.Error(err))...)
		return
	}
	p.Log.Info("orphan sweep", fields...)
}
