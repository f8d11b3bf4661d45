// profile.go: CPU and allocation profiles of vitrine through its pprof
// listener.

package main

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
	return b.profileAt(ctx, b.pprof, name, b.o.duration)
}

// profileAt is startProfile for the pprof endpoint at addr (nothing when
// addr is ""), with a CPU profile of about d.
func (b *bench) profileAt(ctx context.Context, addr, name string, d time.Duration) (stop func()) {
	if addr == "" {
		return func() {}
	}
	dir := filepath.Join(b.out, "pprof")
	_ = os.MkdirAll(dir, 0o755) // #nosec G301 -- profiles in bench/out, beside the reports, for people to read
	secs := max(int(math.Round(d.Seconds())), 1)
	fetch := func(path, file string) {
		c := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, http.NoBody) // #nosec G704 -- VITRINE_PPROF_ADDR of the vitrine the bench runs
		res, err := c.Do(req)                                                              // #nosec G704 -- the same address
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("status %d", res.StatusCode)
			_ = res.Body.Close()
		}
		if err != nil {
			b.mu.Lock()
			first := !b.warned[path]
			b.warned[path] = true
			b.mu.Unlock()
			if first {
				b.note("pprof: GET http://%s%s: %v (vitrine needs VITRINE_PPROF_ADDR serving net/http/pprof)", addr, path, err)
			}
			return
		}
		defer res.Body.Close()
		f, err := os.Create(filepath.Join(dir, file)) // #nosec G304 -- a fixed profile name in the bench's output directory
		if err != nil {
			return
		}
		_, _ = io.Copy(f, res.Body)
		_ = f.Close() // best effort, like the copy
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
