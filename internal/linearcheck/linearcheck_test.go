package linearcheck

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const ms = time.Millisecond

// h builds histories: times in milliseconds, ret < 0 for +∞.
type h []Op

func (x *h) add(client int, key string, in Input, out Output, call, ret int) {
	in.Key = key
	r := time.Duration(ret) * ms
	if ret < 0 {
		r = Forever
	}
	*x = append(*x, Op{Client: client, Input: in, Output: out, Call: time.Duration(call) * ms, Return: r})
}

func (x *h) create(key, v string, call, ret int) {
	x.add(0, key, Input{Kind: Create, Value: v}, Output{Outcome: OK, Version: 1}, call, ret)
}

func (x *h) write(c int, key, v string, version int64, call, ret int) {
	x.add(c, key, Input{Kind: Write, Value: v}, Output{Outcome: OK, Version: version}, call, ret)
}

func (x *h) cas(c int, key string, expect int64, v string, out Output, call, ret int) {
	x.add(c, key, Input{Kind: CAS, Expect: expect, Value: v}, out, call, ret)
}

func (x *h) read(c int, key string, version int64, v string, call, ret int) {
	x.add(c, key, Input{Kind: Read}, Output{Outcome: OK, Version: version, Value: v}, call, ret)
}

func (x *h) unknown(c int, key, v string, call int) {
	x.add(c, key, Input{Kind: Write, Value: v}, Output{Outcome: Unknown}, call, -1)
}

func check(t *testing.T, history h, staleness time.Duration, want Verdict) Result {
	t.Helper()
	html := filepath.Join(t.TempDir(), "out", "history.html")
	res, err := Check(history, staleness, 10*time.Second, html)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res)
	if res.Verdict != want {
		t.Fatalf("verdict %s with reads %v stale at most, want %s\n%s", res.Verdict, staleness, want, res)
	}
	_, statErr := os.Stat(html)
	if want == Violation {
		if res.HTML != html || statErr != nil {
			t.Errorf("a violation without its visualisation: HTML %q, %v", res.HTML, statErr)
		}
		if len(res.Illegal) == 0 || res.Minimal == "" {
			t.Errorf("a violation that names no product or history: %+v", res)
		}
	} else if statErr == nil || res.HTML != "" {
		t.Errorf("a visualisation written for a %s history", res.Verdict)
	}
	return res
}

// Concurrent writes, CAS and reads on two products, in an order that
// explains every answer.
func TestLegalConcurrentHistory(t *testing.T) {
	var x h
	x.create("p", "init", 0, 1)
	x.create("q", "q0", 0, 1)
	x.write(1, "p", "a", 2, 2, 10)
	x.read(2, "p", 1, "init", 3, 5) // concurrent with the write: the old value
	x.read(3, "p", 2, "a", 4, 12)   // concurrent: the new one
	x.cas(3, "p", 2, "b", Output{Outcome: OK, Version: 3}, 13, 15)
	x.cas(1, "p", 2, "c", Output{Outcome: Refused}, 14, 16) // after b, or at the same time: refused
	x.read(2, "p", 3, "b", 17, 18)
	x.write(2, "q", "q1", 2, 2, 30)
	x.write(1, "q", "q2", 3, 3, 20) // concurrent writes: both take effect, q1 first
	x.read(3, "q", 3, "q2", 31, 32)
	res := check(t, x, 0, Linearizable)
	if res.Ops != 11 || res.Keys != 2 || res.Reads != 4 || res.Writes != 3 || res.CAS != 2 || res.Creates != 2 || res.Refused != 1 || res.Unknown != 0 {
		t.Errorf("counts %+v", res)
	}
}

// A write acknowledged, then a read well after it (beyond the bound) that
// answers the value before it: the write is lost.
func TestLostAcknowledgedWrite(t *testing.T) {
	var x h
	x.create("p", "init", 0, 1)
	x.write(1, "p", "a", 2, 2, 3)
	x.read(2, "p", 1, "init", 100, 101)
	res := check(t, x, 50*ms, Violation)
	if len(res.Illegal) != 1 || res.Illegal[0] != "p" {
		t.Errorf("illegal products %v, want [p]", res.Illegal)
	}
	if !strings.Contains(res.Minimal, `read() → v1 "init"`) {
		t.Errorf("the minimal history does not show the stale read:\n%s", res.Minimal)
	}
	html, err := os.ReadFile(res.HTML)
	if err != nil || !strings.Contains(string(html), "init") {
		t.Errorf("the visualisation lacks the history: %v", err)
	}
}

// A read called 20 ms after a write was acknowledged answers the value
// before it: within a bound of 50 ms, not within 15 ms nor 0.
func TestStaleReadWithinTheBound(t *testing.T) {
	var x h
	x.create("p", "init", 0, 1)
	x.write(1, "p", "a", 2, 10, 20)
	x.read(2, "p", 1, "init", 40, 41)
	x.read(2, "p", 2, "a", 42, 43)
	check(t, x, 50*ms, Linearizable)
	check(t, x, 15*ms, Violation)
	check(t, x, 0, Violation)
}

// Writes have no slack: a CAS that succeeded from a version the product
// no longer had is a violation whatever the bound on reads.
func TestCASFromAWrongVersion(t *testing.T) {
	var x h
	x.create("p", "init", 0, 1)
	x.write(1, "p", "a", 2, 2, 3)
	x.cas(2, "p", 1, "b", Output{Outcome: OK, Version: 3}, 5, 6)
	check(t, x, time.Hour, Violation)

	// And one refused though its version was the product's.
	x = nil
	x.create("p", "init", 0, 1)
	x.write(1, "p", "a", 2, 2, 3)
	x.cas(2, "p", 2, "b", Output{Outcome: Refused}, 5, 6)
	check(t, x, time.Hour, Violation)

	// A write answered with a version it could not have made.
	x = nil
	x.create("p", "init", 0, 1)
	x.write(1, "p", "a", 3, 2, 3)
	check(t, x, time.Hour, Violation)
}

// A write of unknown outcome may never take effect, or take effect late.
func TestUnknownWrite(t *testing.T) {
	var never h
	never.create("p", "init", 0, 1)
	never.unknown(1, "p", "lost", 5)
	never.read(2, "p", 1, "init", 50, 51)
	never.write(2, "p", "b", 2, 60, 61) // version 2: the unknown one did not happen (yet)
	never.read(2, "p", 2, "b", 70, 71)
	res := check(t, never, 0, Linearizable)
	if res.Unknown != 1 {
		t.Errorf("unknown %d, want 1", res.Unknown)
	}

	var late h
	late.create("p", "init", 0, 1)
	late.unknown(1, "p", "late", 5)
	late.read(2, "p", 1, "init", 50, 51)
	late.read(2, "p", 2, "late", 100, 101)
	late.write(2, "p", "b", 3, 110, 111) // after it
	check(t, late, 0, Linearizable)

	// Once seen, it stays: a later read of the state before it is not.
	late.read(3, "p", 1, "init", 120, 121)
	check(t, late, 0, Violation)
}

// Not found only before the create.
func TestNotFound(t *testing.T) {
	var x h
	x.add(1, "p", Input{Kind: Read}, Output{Outcome: NotFound}, 0, 1)
	x.create("p", "init", 2, 3)
	x.read(1, "p", 1, "init", 4, 5)
	check(t, x, 0, Linearizable)
	x.add(1, "p", Input{Kind: Write, Value: "a"}, Output{Outcome: NotFound}, 6, 7)
	check(t, x, 0, Violation)
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for range 100 {
				r.Call(c, Input{Key: "p", Kind: Read}).End(Output{Outcome: Unknown}, "", "a failed read")
				r.Call(c, Input{Key: "p", Kind: Write, Value: "x"}).End(Output{Outcome: Unknown}, "", "503")
				r.Call(c, Input{Kind: Create, Value: "y"}).End(Output{Outcome: OK, Version: 1}, "q", "")
			}
		})
	}
	wg.Wait()
	ops := r.Ops()
	if len(ops) != 8*200 {
		t.Fatalf("%d operations recorded, want %d (failed reads are not)", len(ops), 8*200)
	}
	for _, op := range ops {
		switch op.Input.Kind {
		case Write:
			if op.Return != Forever {
				t.Errorf("an unknown write returns at %v, want +∞", op.Return)
			}
		case Create:
			if op.Input.Key != "q" || op.Return < op.Call || op.Return == Forever {
				t.Errorf("create recorded as %s", op)
			}
		default:
			t.Errorf("recorded %s", op)
		}
	}
}

func TestCheckRefusesMalformedHistories(t *testing.T) {
	var x h
	x.create("p", "init", 0, 1)
	if _, err := Check(x, -ms, 0, ""); err == nil {
		t.Error("a negative bound accepted")
	}
	x = append(x, Op{Input: Input{Kind: Read}, Output: Output{Outcome: OK, Version: 1, Value: "init"}, Call: 2, Return: 3})
	if _, err := Check(x, 0, 0, ""); err == nil || !strings.Contains(err.Error(), "no product key") {
		t.Errorf("an operation without a key: %v", err)
	}
}
