//go:build integration

package baseline

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPgbenchOnPostgres runs the pgbench -S baseline against the PostgreSQL
// of scripts/services (which installs pgbench and psql with the server), in
// a schema of this test's own, and checks that it measures and cleans up.
func TestPgbenchOnPostgres(t *testing.T) {
	url := os.Getenv("VITRINE_POSTGRES_URL")
	if url == "" {
		t.Fatal(`VITRINE_POSTGRES_URL is not set: run eval "$(scripts/services up postgres)" first (make test does)`)
	}
	schema := fmt.Sprintf("t_pgbench_%x", rand.Uint64())
	res, err := pgbench(t.Context(), url, schema, 2, time.Second)
	if err != nil {
		t.Fatalf("pgbench: %v", err)
	}
	if res.TPS <= 0 || res.LatencyMs <= 0 || res.Clients != 2 || res.Scale != 1 {
		t.Errorf("result %+v\n%s", res, res.Output)
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("schema %s is left behind", schema)
	}
}
