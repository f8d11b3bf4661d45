package cluster

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStaticKeepsAMemberThatMissedOnePoll: a peer that leaves one poll
// unanswered stays a member for that poll and is dropped at the second;
// a peer whose port refuses connections is dropped at once.
func TestStaticKeepsAMemberThatMissedOnePoll(t *testing.T) {
	var slow atomic.Bool
	peer := func(id string, slowed *atomic.Bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slowed != nil && slowed.Load() {
				select {
				case <-time.After(2 * time.Second):
				case <-r.Context().Done():
				}
				return
			}
			_ = json.NewEncoder(w).Encode(staticMember{Cluster: "c", ID: id, Host: "127.0.0.1", Port: 1, Members: 3})
		}))
	}
	a, b, c := peer("a", nil), peer("b", &slow), peer("c", nil)
	defer a.Close()
	defer b.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	p := &staticProvider{name: "c", peers: []string{addr(a), addr(b), addr(c)}, self: "a",
		client: &http.Client{Timeout: 200 * time.Millisecond}, last: map[string]*staticMember{}, missed: map[string]bool{}}
	ids := func() string {
		members, _, ok := p.check(context.Background())
		if !ok {
			t.Fatal("no peer answered")
		}
		var out []string
		for _, m := range members {
			out = append(out, m.Id)
		}
		return strings.Join(out, ",")
	}
	if got := ids(); got != "a,b,c" {
		t.Fatalf("every peer answering: members %s, want a,b,c", got)
	}
	slow.Store(true)
	c.Close() // its port refuses connections now
	if _, err := net.Dial("tcp", addr(c)); err == nil {
		t.Fatal("c's port still accepts connections")
	}
	if got := ids(); got != "a,b" {
		t.Fatalf("b slow once, c refusing: members %s, want a,b (b kept for one poll, c dropped at once)", got)
	}
	if got := ids(); got != "a" {
		t.Fatalf("b slow twice in a row: members %s, want a", got)
	}
	slow.Store(false)
	if got := ids(); got != "a,b" {
		t.Fatalf("b answering again: members %s, want a,b", got)
	}
}
