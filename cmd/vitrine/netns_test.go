//go:build integration && faults

package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Network namespaces for partitions between vitrine nodes: each node runs
// in a namespace of its own (ip netns), where it sees only its loopback.
// Everything it reaches, it reaches through forwarders the test runs: a
// listener on 127.0.0.1:PORT inside the namespace for each server port
// (PostgreSQL, Redis, Kafka, S3, on the host's loopback) and for each port
// of every other node (its membership endpoint and its actor endpoint,
// inside that node's namespace). Ports are all distinct, so one address
// space holds: a node dials 127.0.0.1:PORT wherever PORT is. A link joins
// two nodes (the forwarders of both directions) and can be cut and healed;
// a cut is silent: no byte crosses, no connection is closed or refused,
// new connections are accepted and carry nothing, as when a switch drops
// every packet. Healing lets the bytes held back through, as TCP would
// after retransmitting. Traffic stays on this machine.
//
// Namespaces are named vt-<random>-N; they and the processes in them are
// removed when the test ends, failed or not, and a test removes those a
// killed earlier run left (removeStaleNetns).

// netnsPrefix starts the name of every namespace these tests make.
const netnsPrefix = "vt-"

// netns is a network namespace the test made.
type netns struct {
	name string
	fd   int // open on /var/run/netns/NAME, for setns
}

// requireNetns skips the test where namespaces cannot be made (not root,
// no iproute2).
func requireNetns(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2's ip")
	}
}

// removeStaleNetns deletes the vt- namespaces a killed earlier run left,
// after killing the processes still in them (which that run started).
func removeStaleNetns(t testing.TB) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], netnsPrefix) {
			continue
		}
		t.Logf("removing namespace %s left by an earlier run", f[0])
		deleteNetns(t, f[0])
	}
}

// deleteNetns kills the processes in namespace name and deletes it.
func deleteNetns(t testing.TB, name string) {
	pids, _ := exec.Command("ip", "netns", "pids", name).Output()
	for _, p := range strings.Fields(string(pids)) {
		var pid int
		if _, err := fmt.Sscan(p, &pid); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v %s", name, err, out)
	}
}

// newNetns makes a namespace with its loopback up; it is deleted (with
// any process left in it) when the test ends.
func newNetns(t testing.TB, i int, run string) *netns {
	t.Helper()
	name := fmt.Sprintf("%s%s-%d", netnsPrefix, run, i)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v %s", name, err, out)
	}
	ns := &netns{name: name, fd: -1}
	t.Cleanup(func() {
		if ns.fd >= 0 {
			syscall.Close(ns.fd)
		}
		deleteNetns(t, name)
	})
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v %s", name, err, out)
	}
	fd, err := syscall.Open("/var/run/netns/"+name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	ns.fd = fd
	return ns
}

// netnsRunID names one run's namespaces.
func netnsRunID() string { return fmt.Sprintf("%06x", rand.Uint32()&0xffffff) }

// command is name run inside the namespace.
func (ns *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// in runs fn on a thread moved into ns (nil: the test's own namespace),
// so that the sockets fn makes belong to ns; they stay there afterwards.
// The thread goes back to the test's namespace, or, if it cannot, ends
// with the goroutine.
func (ns *netns) in(fn func() error) error {
	if ns == nil {
		return fn()
	}
	runtime.LockOSThread()
	self, err := syscall.Open("/proc/thread-self/ns/net", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer syscall.Close(self)
	if err := setns(ns.fd); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.name, err)
	}
	ferr := fn()
	if err := setns(self); err != nil {
		return ferr // the thread stays locked: it ends with the goroutine
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(fd int) error {
	return unix.Setns(fd, unix.CLONE_NEWNET)
}

// listen listens on addr inside ns.
func (ns *netns) listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := ns.in(func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// dial connects to addr from inside ns.
func (ns *netns) dial(addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.in(func() (err error) {
		c, err = net.Dial("tcp", addr)
		return err
	})
	return c, err
}

// gate is a link's switch: open carries bytes, cut holds them back.
type gate struct {
	mu   sync.Mutex
	cond *sync.Cond
	cut  bool
}

func newGate() *gate {
	g := &gate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *gate) set(cut bool) {
	g.mu.Lock()
	g.cut = cut
	g.mu.Unlock()
	g.cond.Broadcast()
}

// wait returns once the gate is open.
func (g *gate) wait() {
	g.mu.Lock()
	for g.cut {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// forwarder listens on 127.0.0.1:port in one namespace and connects each
// connection to 127.0.0.1:port in another (or the test's), through a gate.
type forwarder struct {
	ln    net.Listener
	gate  *gate
	mu    sync.Mutex
	conns map[net.Conn]bool
	done  sync.WaitGroup
}

// forward serves 127.0.0.1:port in from (nil: the test's namespace) and
// carries each connection to the same address in to (nil: the test's),
// through g (nil: always open). It stops when the test ends.
func forward(t testing.TB, from, to *netns, port int, g *gate) *forwarder {
	t.Helper()
	return forwardTo(t, from, to, fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port), g)
}

func forwardTo(t testing.TB, from, to *netns, listen, target string, g *gate) *forwarder {
	t.Helper()
	ln, err := from.listen(listen)
	if err != nil {
		t.Fatalf("forwarder on %s in %s: %v", listen, nsName(from), err)
	}
	if g == nil {
		g = newGate()
	}
	f := &forwarder{ln: ln, gate: g, conns: map[net.Conn]bool{}}
	t.Cleanup(f.close)
	f.done.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.done.Go(func() { f.serve(c, to, target) })
		}
	})
	return f
}

func nsName(ns *netns) string {
	if ns == nil {
		return "the test's namespace"
	}
	return ns.name
}

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		c.Close()
		return false
	}
	f.conns[c] = true
	return true
}

func (f *forwarder) serve(c net.Conn, to *netns, target string) {
	if !f.track(c) {
		return
	}
	// A connection made across a cut link waits for the link, as a SYN
	// would be retransmitted: nothing answers it meanwhile.
	f.gate.wait()
	up, err := to.dial(target)
	if err != nil {
		c.Close()
		return
	}
	if !f.track(up) {
		c.Close()
		return
	}
	var both sync.WaitGroup
	both.Go(func() { f.pipe(up, c) })
	both.Go(func() { f.pipe(c, up) })
	both.Wait()
	c.Close()
	up.Close()
	f.mu.Lock()
	if f.conns != nil {
		delete(f.conns, c)
		delete(f.conns, up)
	}
	f.mu.Unlock()
}

// pipe copies src to dst, holding every chunk while the gate is cut. A
// half-close passes on; a failure ends both connections.
func (f *forwarder) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.gate.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok && tc.CloseWrite() == nil {
				return
			}
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}

// close stops listening and ends every connection.
func (f *forwarder) close() {
	f.ln.Close()
	f.gate.set(false)
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.done.Wait()
}
