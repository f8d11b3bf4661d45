package redis

import (
	"testing"
	"time"
)

func TestRepairs(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ttl := time.Minute

	r := newRepairs(2)
	r.add("a", order{2, kindStale}, t0)
	r.add("a", order{1, kindDeleted}, t0.Add(time.Second)) // older: kept as it was
	if p := r.pending(t0, ttl); len(p) != 1 || p[0].at != (order{2, kindStale}) || !p[0].since.Equal(t0) {
		t.Fatalf("pending = %v, want a at 2~ since t0", p)
	}
	r.add("a", order{2, kindDeleted}, t0.Add(2*time.Second)) // newer: replaces, since then
	p := r.pending(t0, ttl)
	if len(p) != 1 || p[0].at != (order{2, kindDeleted}) || !p[0].since.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("pending = %v, want a at 2! since t0+2s", p)
	}

	// done leaves a repair recorded after the one written.
	written := p[0]
	r.add("a", order{3, kindStale}, t0.Add(3*time.Second))
	r.done(written)
	if r.len() != 1 {
		t.Fatal("done dropped a newer repair")
	}
	// settled drops a repair that an entry as new or newer replaced.
	r.settled("a", order{2, kindValue})
	if r.len() != 1 {
		t.Fatal("an older entry settled a newer repair")
	}
	r.settled("a", order{3, kindValue})
	if r.len() != 0 {
		t.Fatal("a newer entry did not settle the repair")
	}

	// Full: the first refusal says so, the next ones do not.
	if r.add("a", order{1, kindStale}, t0) || r.add("b", order{1, kindStale}, t0) {
		t.Fatal("overflow reported with room left")
	}
	if !r.add("c", order{1, kindStale}, t0) {
		t.Fatal("the first overflow is not reported")
	}
	if r.add("d", order{1, kindStale}, t0) {
		t.Fatal("the second overflow is reported again")
	}
	if r.len() != 2 {
		t.Fatalf("len = %d past the bound of 2", r.len())
	}
	r.add("a", order{5, kindStale}, t0.Add(30*time.Second)) // a key held can still grow

	// A repair older than the TTL is dropped: the entries it would replace
	// have expired.
	p = r.pending(t0.Add(ttl), ttl)
	if len(p) != 1 || p[0].key != "a" {
		t.Fatalf("pending after the TTL = %v, want a alone", p)
	}
	if r.add("e", order{1, kindStale}, t0.Add(ttl)) {
		t.Fatal("overflow reported after room was made")
	}
	if r.len() != 2 {
		t.Fatalf("len = %d, want a and e", r.len())
	}
}
