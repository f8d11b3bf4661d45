//go:build integration

package postgres_test

import (
	"testing"
	"time"

	"github.com/vitrine-dev/vitrine/persistence/eventtest"
	"github.com/vitrine-dev/vitrine/persistence/postgres"
)

// TestEventLog runs the event log's conformance suite with two handles on
// one schema, as two nodes of a cluster hold it.
func TestEventLog(t *testing.T) {
	t.Parallel()
	eventtest.Run(t, func(t *testing.T) eventtest.Harness {
		url, _ := postgres.FreshSchema(t)
		clk := newClock()
		opts := postgres.Options{Now: clk.Now, EventRetention: time.Minute}
		return eventtest.Harness{Log: open(t, url, opts), Other: open(t, url, opts), Retention: time.Minute,
			Advance: clk.Advance, Now: clk.Now}
	})
}
