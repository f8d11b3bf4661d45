// Package linearcheck records the operations clients make on products and
// checks the history with Porcupine (github.com/anishathalye/porcupine)
// against a model of each product as a register: a version and a value.
//
// # The model
//
// A product is a register (version, value), checked alone (the history is
// partitioned by product key: linearizability is local). It starts absent
// (version 0); the history carries its creation.
//
//   - Create(value) — POST: accepted only on an absent product, and makes
//     it (1, value); its answer must say version 1.
//   - Write(value) — PATCH without If-Match: makes (v+1, value); an answer
//     must say version v+1.
//   - CAS(expected e, value) — PATCH with If-Match: when e = v it makes
//     (v+1, value) and its answer must say v+1; when e ≠ v nothing changes
//     and the answer must be "precondition failed" (412).
//   - Read — GET: must answer the register's (version, value) exactly.
//
// Any operation may answer "not found" only on an absent product. A write
// whose outcome is unknown (a timeout, a connection error, a 5xx such as
// 503 outcome_unknown) may have taken effect at any time after its call, or
// never: it is recorded with a return time of +∞ (Porcupine's convention),
// so the checker may place it anywhere after its call, last included (which
// is never). A read that failed has no effect and is not recorded.
//
// # Bounded staleness
//
// [Check] takes a staleness bound δ. A read called at c is checked as if
// called at c−δ: it may return any state the register had at some instant
// of [c−δ, its return]. δ = 0 is linearizability (every read sees every
// write acknowledged before it was called). With δ > 0, reads are at most δ
// stale: a read called more than δ after a write was acknowledged sees that
// write or a later one; reads may go back in time within δ (two reads in a
// row may see a newer then an older state) and a client may not see its own
// write for up to δ. Writes (create, write, cas) are always checked without
// slack: they must be linearizable per product, whatever δ.
package linearcheck

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is what an operation does.
type Kind int

// The kinds of operation.
const (
	Read   Kind = iota // GET: no input
	Write              // PATCH without If-Match: Input.Value
	CAS                // PATCH with If-Match: Input.Expect and Input.Value
	Create             // POST: Input.Value; the product's key is known only when it succeeded
)

func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Write:
		return "write"
	case CAS:
		return "cas"
	case Create:
		return "create"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Outcome is how an operation ended.
type Outcome int

// The outcomes.
const (
	// OK: the operation took effect (or read) and answered Output.Version
	// (and, for a read, Output.Value).
	OK Outcome = iota
	// Refused: a CAS refused because its expected version was not the
	// product's (412 Precondition Failed). Nothing changed.
	Refused
	// NotFound: the product does not exist (404). Nothing changed.
	NotFound
	// Unknown: no answer says whether a write took effect (a timeout, a
	// connection error, a 5xx such as 503 outcome_unknown).
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Refused:
		return "precondition failed"
	case NotFound:
		return "not found"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Input is what an operation asks.
type Input struct {
	Key    string // the product
	Kind   Kind
	Value  string // written (write, cas, create)
	Expect int64  // the version a CAS expects (its If-Match)
}

// Output is what an operation answered.
type Output struct {
	Outcome Outcome
	Version int64  // OK: the version read, or the new version written
	Value   string // OK read: the value read
}

// Forever is the return time of an operation whose outcome is unknown: it
// may take effect at any time after its call.
const Forever = time.Duration(math.MaxInt64)

// Op is one recorded operation. Call and Return are monotonic times since
// the recorder's start (Return is Forever for an unknown outcome).
type Op struct {
	Client       int
	Input        Input
	Output       Output
	Call, Return time.Duration
	Note         string // free text for the visualisation: the node, the status…
}

func (op Op) String() string {
	ret := "∞"
	if op.Return != Forever {
		ret = fmtDur(op.Return)
	}
	s := fmt.Sprintf("[%s, %s] client %d %s", fmtDur(op.Call), ret, op.Client, describe(op.Input, op.Output))
	if op.Note != "" {
		s += " (" + op.Note + ")"
	}
	return s
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// Recorder keeps the operations of concurrent clients. It is safe for
// concurrent use; its clock is monotonic, from its creation.
type Recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewRecorder starts a recorder; its clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the time since the recorder started (monotonic).
func (r *Recorder) Now() time.Duration { return time.Since(r.start) }

// Pending is an operation called and not yet returned.
type Pending struct {
	r      *Recorder
	client int
	in     Input
	call   time.Duration
}

// Call records the call of an operation now. Take it just before sending
// the request, and End it just after the answer is read.
func (r *Recorder) Call(client int, in Input) *Pending {
	return &Pending{r: r, client: client, in: in, call: r.Now()}
}

// End records the operation's return now, with its output. An unknown
// outcome is recorded with a return time of Forever; a read whose outcome
// is Unknown (it failed) is not recorded, since a read has no effect. A
// create's key may be set only now (the answer names it): key, when not
// empty, replaces the input's.
func (p *Pending) End(out Output, key, note string) {
	ret := p.r.Now()
	if out.Outcome == Unknown {
		if p.in.Kind == Read {
			return
		}
		ret = Forever
	}
	in := p.in
	if key != "" {
		in.Key = key
	}
	p.r.Add(Op{Client: p.client, Input: in, Output: out, Call: p.call, Return: ret, Note: note})
}

// Add records an operation as given.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Ops returns a copy of the history so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// state is a register: version 0 is an absent product.
type state struct {
	Version int64
	Value   string
}

func (s state) String() string {
	if s.Version == 0 {
		return "absent"
	}
	return fmt.Sprintf("v%d %q", s.Version, s.Value)
}

// step is the register's sequential specification: whether op may take
// effect on s with the output it answered, and the state after it.
func step(s state, in Input, out Output) (bool, state) {
	if out.Outcome == NotFound {
		return s.Version == 0, s
	}
	unknown := out.Outcome == Unknown
	switch in.Kind {
	case Read:
		return out.Outcome == OK && out.Version == s.Version && out.Value == s.Value, s
	case Create:
		next := state{1, in.Value}
		return s.Version == 0 && (unknown || out.Outcome == OK && out.Version == 1), next
	case Write:
		if s.Version == 0 {
			return false, s // a write does not create: it would have answered not found
		}
		next := state{s.Version + 1, in.Value}
		return unknown || out.Outcome == OK && out.Version == next.Version, next
	case CAS:
		if s.Version == 0 {
			return false, s
		}
		if in.Expect != s.Version {
			return unknown || out.Outcome == Refused, s
		}
		next := state{s.Version + 1, in.Value}
		return unknown || out.Outcome == OK && out.Version == next.Version, next
	}
	return false, s
}

func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case Read:
		call = "read()"
	case Write:
		call = fmt.Sprintf("write(%q)", in.Value)
	case CAS:
		call = fmt.Sprintf("cas(v%d, %q)", in.Expect, in.Value)
	case Create:
		call = fmt.Sprintf("create(%q)", in.Value)
	default:
		call = in.Kind.String()
	}
	var ret string
	switch {
	case out.Outcome != OK:
		ret = out.Outcome.String()
	case in.Kind == Read:
		ret = state{out.Version, out.Value}.String()
	default:
		ret = fmt.Sprintf("v%d", out.Version)
	}
	return call + " → " + ret
}

// model is the register as a Porcupine model, partitioned by product key.
var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(Input).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(s, in, out any) (bool, any) {
		return step(s.(state), in.(Input), out.(Output))
	},
	Hash: func(s any) uint64 {
		st := s.(state)
		h := uint64(14695981039346656037) // FNV-1a of the value, mixed with the version
		for i := range len(st.Value) {
			h ^= uint64(st.Value[i])
			h *= 1099511628211
		}
		return h ^ uint64(st.Version)*0x9e3779b97f4a7c15
	},
	DescribeOperation: func(in, out any) string { return describe(in.(Input), out.(Output)) },
	DescribeState:     func(s any) string { return s.(state).String() },
	DescribeOperationMetadata: func(m any) string {
		if m == nil {
			return ""
		}
		return m.(string)
	},
}

// Verdict is the outcome of a check.
type Verdict string

// The verdicts.
const (
	Linearizable Verdict = "linearizable" // within the staleness bound
	Violation    Verdict = "violation"    // no order of the operations explains the answers
	TimedOut     Verdict = "unknown"      // the checker ran out of time: nothing proved either way
)

// Result is what a check found.
type Result struct {
	Verdict   Verdict
	Staleness time.Duration // the bound reads were checked with
	Took      time.Duration // the check's own time

	Ops, Keys                   int
	Reads, Writes, CAS, Creates int
	Unknown                     int // writes of unknown outcome
	Refused                     int // CAS answered precondition failed
	NotFound                    int

	// On a violation: the products whose histories no order explains,
	// the visualisation written (the illegal products' histories only),
	// and for the first of them the operations around where every
	// linearization got stuck, with the state it had reached.
	Illegal []string
	HTML    string
	Minimal string
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (reads %s stale at most; checked in %v): %d ops on %d product(s): %d reads, %d writes, %d cas (%d refused), %d creates, %d of unknown outcome, %d not found",
		r.Verdict, r.Staleness, r.Took.Round(time.Millisecond), r.Ops, r.Keys, r.Reads, r.Writes, r.CAS, r.Refused, r.Creates, r.Unknown, r.NotFound)
	switch r.Verdict {
	case Violation:
		names := strings.Join(r.Illegal[:min(len(r.Illegal), 5)], ", ")
		if len(r.Illegal) > 5 {
			names += fmt.Sprintf(" and %d more", len(r.Illegal)-5)
		}
		fmt.Fprintf(&b, "\nno order of the operations explains the answers for %d of the products: %s", len(r.Illegal), names)
		if r.HTML != "" {
			fmt.Fprintf(&b, "\nvisualisation: %s", r.HTML)
		}
		if r.Minimal != "" {
			fmt.Fprintf(&b, "\n%s", r.Minimal)
		}
	case TimedOut:
		b.WriteString("\nthe checker timed out before deciding: make the histories shorter or less concurrent, or give it more time")
	}
	return b.String()
}

// Check checks a history against the register model, reads δ (staleness)
// stale at most, for at most timeout (0: no limit). On a violation it
// writes Porcupine's visualisation of the illegal products' histories to
// htmlPath (its directory is created; "" writes none). The error is for a
// check that could not run or a visualisation that could not be written;
// the verdict is in the result.
func Check(history []Op, staleness, timeout time.Duration, htmlPath string) (Result, error) {
	began := time.Now()
	res := Result{Staleness: staleness}
	if staleness < 0 {
		return res, fmt.Errorf("linearcheck: negative staleness bound %v", staleness)
	}
	keys := map[string]bool{}
	for i, op := range history {
		if op.Input.Key == "" {
			return res, fmt.Errorf("linearcheck: operation %d (%s) has no product key", i, op)
		}
		if op.Return < op.Call {
			return res, fmt.Errorf("linearcheck: operation %d (%s) returns before its call", i, op)
		}
		if op.Input.Kind == Read && op.Output.Outcome == Unknown {
			return res, fmt.Errorf("linearcheck: operation %d is a read of unknown outcome: a failed read is not recorded", i)
		}
		keys[op.Input.Key] = true
		res.Ops++
		switch op.Input.Kind {
		case Read:
			res.Reads++
		case Write:
			res.Writes++
		case CAS:
			res.CAS++
		case Create:
			res.Creates++
		}
		switch op.Output.Outcome {
		case Unknown:
			res.Unknown++
		case Refused:
			res.Refused++
		case NotFound:
			res.NotFound++
		}
	}
	res.Keys = len(keys)
	ops := operations(history, staleness)
	verdict, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	res.Took = time.Since(began)
	switch verdict {
	case porcupine.Ok:
		res.Verdict = Linearizable
		return res, nil
	case porcupine.Unknown:
		res.Verdict = TimedOut
		return res, nil
	case porcupine.Illegal:
	default:
		return res, fmt.Errorf("linearcheck: porcupine answered %q", verdict)
	}
	res.Verdict = Violation

	// Which products: each partition alone (a violation found, the
	// legal ones are quick to confirm). Then the visualisation of those.
	parts := model.Partition(ops)
	var illegal []porcupine.Operation
	for _, p := range parts {
		v := porcupine.CheckOperationsTimeout(model, p, timeout)
		if v == porcupine.Illegal {
			res.Illegal = append(res.Illegal, p[0].Input.(Input).Key)
			illegal = append(illegal, p...)
		}
	}
	if len(illegal) > 0 {
		_, info = porcupine.CheckOperationsVerbose(model, illegal, timeout)
		// The first illegal product is the first partition of illegal.
		if partials := info.PartialLinearizationsOperations(); len(partials) > 0 {
			res.Minimal = minimal(model.Partition(illegal)[0], partials[0])
		}
	}
	var err error
	if htmlPath != "" {
		if err = os.MkdirAll(filepath.Dir(htmlPath), 0o750); err == nil {
			err = porcupine.VisualizePath(model, info, htmlPath)
		}
		if err == nil {
			res.HTML = htmlPath
		} else {
			err = fmt.Errorf("linearcheck: write the visualisation: %w", err)
		}
	}
	res.Took = time.Since(began)
	return res, err
}

// operations converts a history for Porcupine: reads called δ earlier.
func operations(history []Op, staleness time.Duration) []porcupine.Operation {
	ops := make([]porcupine.Operation, len(history))
	for i, op := range history {
		call := op.Call
		meta := op.Note
		if op.Input.Kind == Read && staleness > 0 {
			call -= staleness
			if meta != "" {
				meta += "; "
			}
			meta += fmt.Sprintf("called at %s, checked from %s", fmtDur(op.Call), fmtDur(call))
		}
		ops[i] = porcupine.Operation{ClientId: op.Client, Input: op.Input, Call: int64(call),
			Output: op.Output, Return: int64(op.Return), Metadata: meta}
	}
	return ops
}

// minimal describes where the longest linearization of a product's
// history (ops, a partition that is illegal; partials, its partial
// linearizations) got stuck: the state it reached, its last few steps, and
// the operations not placed that had been called by the time the first of
// them returned (no order lets any of them come next).
func minimal(ops []porcupine.Operation, partials [][]porcupine.Operation) string {
	if len(ops) == 0 {
		return ""
	}
	var best []porcupine.Operation
	for _, p := range partials {
		if len(p) > len(best) {
			best = p
		}
	}
	type id struct {
		client    int
		call, ret int64
	}
	placed := map[id]bool{}
	s := state{}
	for _, op := range best {
		placed[id{op.ClientId, op.Call, op.Return}] = true
		_, s = step(s, op.Input.(Input), op.Output.(Output))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "product %s: %d operations; the longest linearization places %d of them and reaches %s",
		ops[0].Input.(Input).Key, len(ops), len(best), s)
	if len(best) > 0 {
		b.WriteString(". Its last steps:")
		for _, op := range best[max(0, len(best)-3):] {
			fmt.Fprintf(&b, "\n  %s", opLine(op))
		}
	}
	var rest []porcupine.Operation
	for _, op := range ops {
		if !placed[id{op.ClientId, op.Call, op.Return}] {
			rest = append(rest, op)
		}
	}
	if len(rest) == 0 {
		return b.String()
	}
	first := rest[0].Return
	for _, op := range rest {
		first = min(first, op.Return)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Call < rest[j].Call })
	b.WriteString("\nnone of these can come next (the operations not placed that were called before the first of them returned):")
	n := 0
	for _, op := range rest {
		if op.Call > first {
			break
		}
		n++
		if n > 12 {
			b.WriteString("\n  …")
			break
		}
		fmt.Fprintf(&b, "\n  %s", opLine(op))
	}
	return b.String()
}

func opLine(op porcupine.Operation) string {
	ret := "∞"
	if op.Return != int64(Forever) {
		ret = fmtDur(time.Duration(op.Return))
	}
	s := fmt.Sprintf("[%s, %s] client %d %s", fmtDur(time.Duration(op.Call)), ret, op.ClientId, describe(op.Input.(Input), op.Output.(Output)))
	if m, _ := op.Metadata.(string); m != "" {
		s += " (" + m + ")"
	}
	return s
}
