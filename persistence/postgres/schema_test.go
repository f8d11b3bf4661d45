//go:build integration

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BaseURL is the database the integration tests run in: that of
// VITRINE_POSTGRES_URL. Without it, the test fails.
func BaseURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("VITRINE_POSTGRES_URL")
	if base == "" {
		t.Fatal(`VITRINE_POSTGRES_URL is not set: start PostgreSQL with eval "$(scripts/services up postgres)" and run the tests again`)
	}
	return base
}

// FreshSchema creates an empty schema of its own for t in the database of
// VITRINE_POSTGRES_URL, drops it when t ends, and returns the URL whose
// connections use it (their search_path), and its name. Tests that use one
// each run in parallel and again and again.
func FreshSchema(t *testing.T) (string, string) {
	t.Helper()
	base := BaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to VITRINE_POSTGRES_URL: %v", err)
	}
	defer conn.Close(ctx)
	// pg_trgm lives in public, once for the database: created in a test's
	// schema, it would go with that schema, and with it the trigram index
	// of every other test.
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public`)
		return err
	})
	if err != nil {
		t.Fatalf("create extension pg_trgm: %v", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParam(t, base, "search_path", schema), schema
}

// WithParam returns the connection string u with the setting key=value,
// whether u is a URL or key=value pairs.
func WithParam(t *testing.T, u, key, value string) string {
	t.Helper()
	if !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		return u + " " + key + "=" + value
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("VITRINE_POSTGRES_URL: %v", err)
	}
	q := parsed.Query()
	q.Set(key, value)
	parsed.RawQuery = q.Encode()
	return parsed.String()
}
