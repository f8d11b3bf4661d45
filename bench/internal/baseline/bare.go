// Package baseline measures what vitrine is compared with on the same
// machine: a bare fasthttp server returning the same product JSON from
// memory (the front door's limit), pgbench -S against the same PostgreSQL
// (cold reads), and the vips command line making the same variants
// (images).
package baseline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/bench/internal/target"
)

// BareEnv is the variable that makes the bench binary (or its test binary)
// serve the bare baseline instead of running: BENCH_BARE_SERVER=<bodies file>.
const BareEnv = "BENCH_BARE_SERVER"

// Product is one product as vitrine served it.
type Product struct {
	ID   string `json:"id"`
	ETag string `json:"etag"`
	Body []byte `json:"body"` // base64 in the file: the exact bytes
}

// ServeBare serves GET /products/{id} from the products in the file named
// by $BENCH_BARE_SERVER (JSON lines of Product) on a free loopback port,
// prints "listening ADDR" on stdout, and serves until stdin closes. The
// answer mirrors vitrine's: the same body, Content-Type, ETag and
// Cache-Control. It is what a front door can do at best on this machine.
func ServeBare() error {
	f, err := os.Open(os.Getenv(BareEnv)) // #nosec G703 -- $BENCH_BARE_SERVER names the products file the parent bench wrote
	if err != nil {
		return err
	}
	products := map[string]Product{}
	dec := json.NewDecoder(bufio.NewReader(f))
	for {
		var p Product
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("bare server: read products: %w", err)
		}
		products[p.ID] = p
	}
	_ = f.Close() // read-only
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			path := string(ctx.Path())
			id, ok := strings.CutPrefix(path, "/products/")
			p, found := products[id]
			if !ok || !found || !ctx.IsGet() {
				ctx.SetStatusCode(fasthttp.StatusNotFound)
				return
			}
			ctx.SetContentType("application/json")
			ctx.Response.Header.Set("ETag", p.ETag)
			ctx.Response.Header.Set("Cache-Control", "no-cache")
			ctx.SetBody(p.Body)
		},
		Name: "bare",
	}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); _ = ln.Close() }()
	_ = srv.Serve(ln)
	return nil
}

// Bare is a running bare baseline server.
type Bare struct {
	Addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// StartBare runs exe (the bench binary, or the test binary) as the bare
// server over the products in bodiesFile, pinned to cpus when set (taskset
// -c syntax).
func StartBare(exe, bodiesFile, cpus string) (*Bare, error) {
	cmd := target.Command(cpus, exe)
	cmd.Env = append(os.Environ(), BareEnv+"="+bodiesFile)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &Bare{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.done) }()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				line <- addr
			}
		}
		close(line)
	}()
	select {
	case addr, ok := <-line:
		if !ok {
			b.Stop()
			return nil, fmt.Errorf("bare server exited before listening")
		}
		b.Addr = addr
	case <-time.After(30 * time.Second):
		b.Stop()
		return nil, fmt.Errorf("bare server did not start")
	}
	return b, nil
}

// Pid is the server's process id.
func (b *Bare) Pid() int { return b.cmd.Process.Pid }

// Stop ends the server.
func (b *Bare) Stop() {
	_ = b.stdin.Close()
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}
