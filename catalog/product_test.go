package catalog

import (
	"errors"
	"strings"
	"testing"
)

func TestParseProductInput(t *testing.T) {
	long := strings.Repeat("é", 201)
	tests := []struct {
		name      string
		body      string
		wantField string // the field an error must name; "" means valid
		wantCode  string
		check     func(t *testing.T, in ProductInput)
	}{
		{name: "valid minimal", body: `{"name":"Lamp","price":"19.99","user_id":7}`, check: func(t *testing.T, in ProductInput) {
			if in.Name != "Lamp" || in.Price != 1999 || in.UserID != 7 || in.Currency != "USD" || in.Description != "" {
				t.Errorf("got %+v", in)
			}
		}},
		{name: "price as whole number", body: `{"name":"Lamp","price":19.0,"user_id":7}`, check: func(t *testing.T, in ProductInput) {
			if in.Price.String() != "19.00" {
				t.Errorf("price = %s, want 19.00", in.Price)
			}
		}},
		{name: "user_id written 7.0", body: `{"name":"Lamp","price":"19.99","user_id":7.0}`, check: func(t *testing.T, in ProductInput) {
			if in.UserID != 7 {
				t.Errorf("user_id = %d, want 7", in.UserID)
			}
		}},
		{name: "price with cents as number", body: `{"name":"Lamp","price":19.99,"user_id":7}`, wantField: "price"},
		{name: "user_id 7.5", body: `{"name":"Lamp","price":1,"user_id":7.5}`, wantField: "user_id"},
		{name: "user_id with exponent", body: `{"name":"Lamp","price":1,"user_id":7e0}`, wantField: "user_id"},
		{name: "price as string", body: `{"name":"Lamp","price":"19.99","user_id":7}`, check: func(t *testing.T, in ProductInput) {
			if in.Price.String() != "19.99" {
				t.Errorf("price = %s, want 19.99", in.Price)
			}
		}},
		{name: "price zero string", body: `{"name":"Lamp","price":"0","user_id":7}`, check: func(t *testing.T, in ProductInput) {
			if in.Price != 0 {
				t.Errorf("price = %s", in.Price)
			}
		}},
		{name: "name trimmed", body: `{"name":"  Lamp \t","price":1,"user_id":7}`, check: func(t *testing.T, in ProductInput) {
			if in.Name != "Lamp" {
				t.Errorf("name = %q", in.Name)
			}
		}},
		{name: "name of 200 characters", body: `{"name":"` + strings.Repeat("é", 200) + `","price":1,"user_id":7}`},
		{name: "currency EUR", body: `{"name":"Lamp","price":1,"user_id":7,"currency":"EUR"}`, check: func(t *testing.T, in ProductInput) {
			if in.Currency != "EUR" {
				t.Errorf("currency = %q", in.Currency)
			}
		}},
		{name: "read-only fields ignored", body: `{"id":"x","version":9,"images":[],"created_at":"x","updated_at":"y","name":"Lamp","price":1,"user_id":7}`},
		{name: "empty name", body: `{"name":"","price":1,"user_id":7}`, wantField: "name"},
		{name: "spaces-only name", body: `{"name":"   ","price":1,"user_id":7}`, wantField: "name"},
		{name: "201-character name", body: `{"name":"` + long + `","price":1,"user_id":7}`, wantField: "name"},
		{name: "null name", body: `{"name":null,"price":1,"user_id":7}`, wantField: "name"},
		{name: "missing name", body: `{"price":1,"user_id":7}`, wantField: "name"},
		{name: "name a number", body: `{"name":5,"price":1,"user_id":7}`, wantField: "name"},
		{name: "name with control character", body: `{"name":"a\u0007b","price":1,"user_id":7}`, wantField: "name"},
		{name: "price three decimals", body: `{"name":"Lamp","price":"19.999","user_id":7}`, wantField: "price"},
		{name: "price negative", body: `{"name":"Lamp","price":-1,"user_id":7}`, wantField: "price"},
		{name: "price 1e309", body: `{"name":"Lamp","price":1e309,"user_id":7}`, wantField: "price"},
		{name: "price exponent string", body: `{"name":"Lamp","price":"1e3","user_id":7}`, wantField: "price"},
		{name: "price abc", body: `{"name":"Lamp","price":"abc","user_id":7}`, wantField: "price"},
		{name: "price empty string", body: `{"name":"Lamp","price":"","user_id":7}`, wantField: "price"},
		{name: "price too large", body: `{"name":"Lamp","price":"100000000000000","user_id":7}`, wantField: "price"},
		{name: "price boolean", body: `{"name":"Lamp","price":true,"user_id":7}`, wantField: "price"},
		{name: "price missing", body: `{"name":"Lamp","user_id":7}`, wantField: "price"},
		{name: "currency lower case", body: `{"name":"Lamp","price":1,"user_id":7,"currency":"usd"}`, wantField: "currency"},
		{name: "currency unknown", body: `{"name":"Lamp","price":1,"user_id":7,"currency":"XYZ"}`, wantField: "currency"},
		{name: "currency number", body: `{"name":"Lamp","price":1,"user_id":7,"currency":978}`, wantField: "currency"},
		{name: "user_id zero", body: `{"name":"Lamp","price":1,"user_id":0}`, wantField: "user_id"},
		{name: "user_id negative", body: `{"name":"Lamp","price":1,"user_id":-3}`, wantField: "user_id"},
		{name: "user_id string", body: `{"name":"Lamp","price":1,"user_id":"7"}`, wantField: "user_id"},
		{name: "user_id fraction", body: `{"name":"Lamp","price":1,"user_id":7.5}`, wantField: "user_id"},
		{name: "user_id missing", body: `{"name":"Lamp","price":1}`, wantField: "user_id"},
		{name: "description too long", body: `{"name":"Lamp","price":1,"user_id":7,"description":"` + strings.Repeat("x", 10001) + `"}`, wantField: "description"},
		{name: "description wrong type", body: `{"name":"Lamp","price":1,"user_id":7,"description":[]}`, wantField: "description"},
		{name: "unknown field refused", body: `{"name":"Lamp","price":1,"user_id":7,"colour":"red"}`, wantField: "colour"},
		{name: "malformed JSON", body: `{"name":"Lamp",`, wantCode: "malformed_json"},
		{name: "array body", body: `[1,2]`, wantCode: "malformed_json"},
		{name: "null body", body: `null`, wantCode: "malformed_json"},
		{name: "two documents", body: `{"name":"a","price":1,"user_id":1} {}`, wantCode: "malformed_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseProductInput([]byte(tt.body))
			switch {
			case tt.wantField == "" && tt.wantCode == "":
				if err != nil {
					t.Fatalf("ParseProductInput: %v", err)
				}
				if tt.check != nil {
					tt.check(t, in)
				}
			default:
				var e *Error
				if !errors.As(err, &e) || e.Kind != KindInvalid {
					t.Fatalf("err = %v, want a KindInvalid *Error", err)
				}
				if tt.wantCode != "" && e.Code != tt.wantCode {
					t.Errorf("code = %q, want %q", e.Code, tt.wantCode)
				}
				if tt.wantField != "" {
					found := false
					for _, f := range e.Fields {
						found = found || f.Field == tt.wantField
					}
					if !found {
						t.Errorf("fields %+v do not name %q", e.Fields, tt.wantField)
					}
				}
			}
		})
	}
}

func TestParsePriceRoundTrip(t *testing.T) {
	for _, s := range []string{"0", "0.5", "19.99", "19.9", "007", "9999999999999.99"} {
		p, err := ParsePrice(s)
		if err != nil {
			t.Fatalf("ParsePrice(%q): %v", s, err)
		}
		q, err := ParsePrice(p.String())
		if err != nil || q != p {
			t.Errorf("%q -> %s -> %v, %v", s, p, q, err)
		}
	}
	if p, _ := ParsePrice("19.9"); p.String() != "19.90" {
		t.Errorf("19.9 renders %s, want 19.90", p)
	}
	for _, s := range []string{"", ".5", "5.", "+1", "1,5", " 1", "1e2", "0x10", "NaN", "Infinity", "-0"} {
		if _, err := ParsePrice(s); err == nil {
			t.Errorf("ParsePrice(%q) accepted", s)
		}
	}
}

func TestMergePatch(t *testing.T) {
	tests := []struct{ name, doc, patch, want string }{
		{"replace a member", `{"a":1,"b":2}`, `{"a":3}`, `{"a":3,"b":2}`},
		{"null removes", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`},
		{"nested merge", `{"a":{"x":1,"y":2}}`, `{"a":{"y":null,"z":3}}`, `{"a":{"x":1,"z":3}}`},
		{"array replaced whole", `{"a":[1,2]}`, `{"a":[3]}`, `{"a":[3]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MergePatch([]byte(tt.doc), []byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := MergePatch([]byte(`{}`), []byte(`[1]`)); err == nil {
		t.Error("an array patch was accepted")
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"01937a4e-7b8c-7def-8a12-3456789abcde": true,
		"01937A4E-7B8C-7DEF-8A12-3456789ABCDE": false,
		"01937a4e7b8c7def8a123456789abcde":     false,
		"../../etc/passwd":                     false,
		"":                                     false,
	} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestValidCurrency(t *testing.T) {
	for code, want := range map[string]bool{"USD": true, "EUR": true, "JPY": true, "usd": false, "US": false, "SDA": false, "D A": false, "": false} {
		if got := ValidCurrency(code); got != want {
			t.Errorf("ValidCurrency(%q) = %v, want %v", code, got, want)
		}
	}
}
