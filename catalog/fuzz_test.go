package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseProductInput: decoding a product document never panics; what it
// accepts is valid (a name within bounds, a known currency, a positive
// owner, a price within range) and survives a round trip unchanged; what it
// refuses is an invalid *Error that names a field or says why. Seeds:
// testdata/fuzz/FuzzParseProductInput.
func FuzzParseProductInput(f *testing.F) {
	f.Add([]byte(`{"name":"Lamp","price":"19.99","user_id":7}`))
	f.Add([]byte(`{"name":" Lamp ","price":19,"user_id":7.0,"currency":"EUR","description":null}`))
	f.Add([]byte(`{"name":"a\u0007b","price":"1e3","user_id":-1,"colour":"red"}`))
	f.Add([]byte(`{"name":"x","price":99999999999999,"user_id":9223372036854775808}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseProductInput(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindInvalid || e.Detail == "" {
				t.Fatalf("refusal %v is not an invalid *Error with a detail", err)
			}
			return
		}
		if in.Name == "" || len([]rune(in.Name)) > MaxNameLength || in.UserID <= 0 || !ValidCurrency(in.Currency) ||
			in.Price < 0 || in.Price > MaxPrice || len([]rune(in.Description)) > MaxDescriptionLength {
			t.Fatalf("accepted an invalid input %+v from %q", in, data)
		}
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseProductInput(again)
		if err != nil || back != in {
			t.Fatalf("round trip of %+v: %+v, %v", in, back, err)
		}
	})
}

// FuzzMergePatch: a merge patch never panics; applied to a valid document
// it yields JSON, and applying it twice changes nothing more (RFC 7396
// patches are idempotent).
func FuzzMergePatch(f *testing.F) {
	f.Add([]byte(`{"name":"Lamp","price":"19.99","user_id":7}`), []byte(`{"price":"20","description":null}`))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`{"a":{"b":null,"c":[1,2]}}`))
	f.Add([]byte(`{"user_id":9223372036854775807}`), []byte(`{"user_id":9223372036854775806}`))
	f.Add([]byte(`{}`), []byte(`[1]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		var d map[string]any
		if json.Unmarshal(doc, &d) != nil || d == nil {
			return // MergePatch is given documents the server rendered
		}
		once, err := MergePatch(doc, patch)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindInvalid {
				t.Fatalf("refusal %v is not an invalid *Error", err)
			}
			return
		}
		if !json.Valid(once) {
			t.Fatalf("result is not JSON: %q", once)
		}
		twice, err := MergePatch(once, patch)
		if err != nil {
			t.Fatalf("second application: %v", err)
		}
		var a, b any
		if err := json.Unmarshal(once, &a); err != nil {
			t.Fatalf("first application's result: %v", err)
		}
		if err := json.Unmarshal(twice, &b); err != nil {
			t.Fatalf("second application's result: %v", err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("applying %s twice changed more: %s then %s", patch, once, twice)
		}
	})
}
