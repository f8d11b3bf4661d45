package main

// CPU and allocation profiles of vitrine per phase.

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// startProfile fetches a CPU profile of vitrine for the phase's duration,
// then, when the returned function is called at the phase's end, its
// allocation profile. Without -pprof it does nothing.
func (b *bench) startProfile(ctx context.Context, name string) (stop func()) {
	if b.pprof == "" {
		return func() {}
	}
	dir := filepath.Join(b.out, "pprof")
	_ = os.MkdirAll(dir, 0o755)
	secs := max(int(math.Round(b.o.duration.Seconds())), 1)
	fetch := func(path, file string) {
		c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.pprof+path, nil)
		res, err := c.Do(req)
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("status %d", res.StatusCode)
			res.Body.Close()
		}
		if err != nil {
			b.mu.Lock()
			first := !b.warned[path]
			b.warned[path] = true
			b.mu.Unlock()
			if first {
				b.note("pprof: GET http://%s%s: %v (vitrine needs VITRINE_PPROF_ADDR serving net/http/pprof)", b.pprof, path, err)
			}
			return
		}
		defer res.Body.Close()
		f, err := os.Create(filepath.Join(dir, file))
		if err != nil {
			return
		}
		_, _ = io.Copy(f, res.Body)
		f.Close()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name+".cpu.pprof")
	}()
	return func() {
		wg.Wait()
		fetch("/debug/pprof/allocs", name+".allocs.pprof")
	}
}
