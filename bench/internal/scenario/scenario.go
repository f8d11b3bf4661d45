// Package scenario holds the load the bench puts on vitrine: seeding the
// catalog, hot reads by a Zipf distribution, a read/write mix, filtered
// and paginated lists, cold reads, and image upload bursts.
package scenario

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vitrine-dev/vitrine/bench/internal/baseline"
	"github.com/vitrine-dev/vitrine/bench/internal/httpc"
	"github.com/vitrine-dev/vitrine/bench/internal/load"
	"github.com/vitrine-dev/vitrine/bench/internal/zipf"
)

// Words make product names, and the q filter of lists looks them up.
var (
	Adjectives = []string{"oak", "brass", "linen", "walnut", "ceramic", "wool", "steel", "glass", "cotton", "copper", "marble", "bamboo"}
	Nouns      = []string{"lamp", "chair", "table", "vase", "rug", "mirror", "shelf", "clock", "bowl", "stool", "desk", "bench"}
	currencies = []string{"EUR", "USD", "GBP"}
)

// Users is the number of owners the seeded products are spread over.
const Users = 100

// ProductDoc is the JSON of the i-th seeded product.
func ProductDoc(i int, r *rand.Rand) []byte {
	adj, noun := Adjectives[r.IntN(len(Adjectives))], Nouns[r.IntN(len(Nouns))]
	cents := 100 + r.IntN(99900) // 1.00 … 999.99
	return fmt.Appendf(nil, `{"name":"%s %s %d","description":"A %s %s from the load test, number %d.","price":"%d.%02d","currency":"%s","user_id":%d}`,
		adj, noun, i, adj, noun, i, cents/100, cents%100, currencies[i%len(currencies)], 1+i%Users)
}

func exchange(w *load.Worker) *httpc.Exchange {
	if x, ok := w.Data.(*httpc.Exchange); ok {
		return x
	}
	x := &httpc.Exchange{}
	w.Data = x
	return x
}

// Setup gives each worker its request/response pair.
func Setup(w *load.Worker) { w.Data = &httpc.Exchange{} }

// Seed creates n products with concurrent POSTs (a closed-loop phase with
// a request limit) and returns their ids, in creation order.
func Seed(ctx context.Context, c *httpc.Client, n, concurrency int, seed uint64, tick func(load.Progress)) ([]string, *load.Phase, error) {
	ids := make([]string, n)
	var next atomic.Int64
	op := func(ctx context.Context, w *load.Worker) load.Outcome {
		i := int(next.Add(1) - 1)
		if i >= n {
			return load.Outcome{Label: "post", Fail: "excess"}
		}
		x := exchange(w)
		st, err := c.Do(x, "POST", "/products", "application/json", ProductDoc(i, w.Rand))
		if err != nil {
			return load.Outcome{Label: "post", Fail: httpc.Fail(err)}
		}
		if st != 201 {
			return load.Failed("post", st)
		}
		var p struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(x.Resp.Body(), &p) != nil || p.ID == "" {
			return load.Outcome{Label: "post", Status: st, Fail: "bad-body"}
		}
		ids[i] = p.ID
		return load.Outcome{Label: "post", Status: st}
	}
	ph := load.Closed(ctx, load.Config{Concurrency: concurrency, Duration: 24 * time.Hour, Limit: uint64(n), Seed: seed, Setup: Setup, Tick: tick}, op) // #nosec G115 -- n ≥ 0: make([]string, n) above
	out := ids[:0]
	for _, id := range ids {
		if id != "" {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return nil, ph, fmt.Errorf("seeding: no product was created (%v)", ph.Fails)
	}
	return out, ph, nil
}

// get is GET /products/{id} expecting 200.
func get(c *httpc.Client, x *httpc.Exchange, label, id string) load.Outcome {
	st, err := c.Do(x, "GET", "/products/"+id, "", nil)
	if err != nil {
		return load.Outcome{Label: label, Fail: httpc.Fail(err)}
	}
	if st != 200 {
		return load.Failed(label, st)
	}
	return load.Outcome{Label: label, Status: st}
}

// ReadHot is GET /products/{id}, the id drawn by Zipf.
func ReadHot(c *httpc.Client, keys *zipf.Keys[string]) load.Op {
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		return get(c, exchange(w), "get", keys.Next(w.Rand))
	}
}

// Mixed is 90 % GET (Zipf), 8 % PATCH of a price (Zipf: the popular
// products are the ones edited), 2 % POST of a new product.
func Mixed(c *httpc.Client, keys *zipf.Keys[string]) load.Op {
	var created atomic.Int64
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		x := exchange(w)
		switch r := w.Rand.IntN(100); {
		case r < 90:
			return get(c, x, "get", keys.Next(w.Rand))
		case r < 98:
			cents := 100 + w.Rand.IntN(99900)
			body := fmt.Appendf(nil, `{"price":"%d.%02d"}`, cents/100, cents%100)
			st, err := c.Do(x, "PATCH", "/products/"+keys.Next(w.Rand), "application/merge-patch+json", body)
			if err != nil {
				return load.Outcome{Label: "patch", Fail: httpc.Fail(err)}
			}
			if st != 200 {
				return load.Failed("patch", st)
			}
			return load.Outcome{Label: "patch", Status: st}
		default:
			i := 1_000_000 + int(created.Add(1))
			st, err := c.Do(x, "POST", "/products", "application/json", ProductDoc(i, w.Rand))
			if err != nil {
				return load.Outcome{Label: "post", Fail: httpc.Fail(err)}
			}
			if st != 201 {
				return load.Failed("post", st)
			}
			return load.Outcome{Label: "post", Status: st}
		}
	}
}

// listState is a worker's walk through the pages of one query.
type listState struct {
	x         httpc.Exchange
	label     string
	query     string
	cursor    string
	pagesLeft int
}

// MaxPages is how many pages a list walk follows next_cursor for.
const MaxPages = 5

// List walks filtered lists: a query by owner, price range, name
// substring (q), owner and q, or none, with a limit of 10, 20 or 50,
// following next_cursor for up to MaxPages pages. Each page is a request,
// labelled by the filter.
func List(c *httpc.Client) load.Op {
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		s, ok := w.Data.(*listState)
		if !ok {
			s = &listState{}
			w.Data = s
		}
		if s.pagesLeft <= 0 || s.cursor == "" {
			s.label, s.query = newQuery(w.Rand)
			s.cursor, s.pagesLeft = "", MaxPages
		}
		path := "/products?" + s.query
		if s.cursor != "" {
			path += "&cursor=" + s.cursor
		}
		s.pagesLeft--
		st, err := c.Do(&s.x, "GET", path, "", nil)
		if err != nil {
			s.cursor = ""
			return load.Outcome{Label: s.label, Fail: httpc.Fail(err)}
		}
		if st != 200 {
			s.cursor = ""
			return load.Failed(s.label, st)
		}
		cur, ok := NextCursor(s.x.Resp.Body())
		if !ok {
			s.cursor = ""
			return load.Outcome{Label: s.label, Status: st, Fail: "bad-body"}
		}
		s.cursor = cur
		return load.Outcome{Label: s.label, Status: st}
	}
}

func newQuery(r *rand.Rand) (label, query string) {
	limit := []int{10, 20, 50}[r.IntN(3)]
	q := "limit=" + strconv.Itoa(limit)
	switch r.IntN(5) {
	case 0:
		return "user", q + "&user_id=" + strconv.Itoa(1+r.IntN(Users))
	case 1:
		lo := r.IntN(900)
		return "price", q + fmt.Sprintf("&min_price=%d.00&max_price=%d.99", lo, lo+r.IntN(100))
	case 2:
		return "q", q + "&q=" + Nouns[r.IntN(len(Nouns))]
	case 3:
		return "user+q", q + "&user_id=" + strconv.Itoa(1+r.IntN(Users)) + "&q=" + Adjectives[r.IntN(len(Adjectives))]
	default:
		return "all", q
	}
}

// NextCursor reads next_cursor of a page ({"items":[…],"next_cursor":…});
// "" when it is null. The key is looked for from the end, past the items.
func NextCursor(page []byte) (string, bool) {
	key := []byte(`"next_cursor":`)
	i := bytes.LastIndex(page, key)
	if i < 0 {
		return "", false
	}
	rest := bytes.TrimSpace(page[i+len(key):])
	rest = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("}")))
	if bytes.Equal(rest, []byte("null")) {
		return "", true
	}
	var s string
	if err := json.Unmarshal(rest, &s); err != nil {
		return "", false
	}
	return s, true
}

// Cold reads each of ids once, in a random order: run it with a request
// limit of len(ids) on a freshly started vitrine, whose cache is empty.
func Cold(c *httpc.Client, ids []string, seed uint64) load.Op {
	order := append([]string(nil), ids...)
	rand.New(rand.NewPCG(seed, 77)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] }) // #nosec G404 -- a reproducible seeded shuffle, not security
	var next atomic.Int64
	return func(ctx context.Context, w *load.Worker) load.Outcome {
		i := int(next.Add(1)-1) % len(order)
		return get(c, exchange(w), "get", order[i])
	}
}

// Fetch GETs every product once with concurrency workers and returns what
// vitrine answered (the bodies the bare baseline serves).
func Fetch(ctx context.Context, c *httpc.Client, ids []string, concurrency int) ([]Product, error) {
	out := make([]Product, len(ids))
	var next atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range max(concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var x httpc.Exchange
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				st, err := c.Do(&x, "GET", "/products/"+ids[i], "", nil)
				if err == nil && st != 200 {
					err = fmt.Errorf("GET /products/%s: status %d", ids[i], st)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				out[i] = Product{ID: ids[i], ETag: string(x.Resp.Header.Peek("ETag")), Body: append([]byte(nil), x.Resp.Body()...)}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return out, firstErr
}

// Product is one product as vitrine served it.
type Product = baseline.Product
