package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on product fields.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 10_000
	MaxSKULength         = 64
)

// Product is an item of the catalog.
type Product struct {
	ID     string `json:"id"`
	UserID int64  `json:"user_id"`
	// SKU is the owner's stock-keeping unit of the product ("": none),
	// unique among the owner's products.
	SKU         string    `json:"sku,omitempty"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Price       Price     `json:"price"`
	Currency    string    `json:"currency"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Version grows by one on every change to the product or its images; the
	// ETag is derived from it.
	Version int64   `json:"version"`
	Images  []Image `json:"images"`
}

// MarshalJSON renders the product with images always an array (never
// null), and each image's variants too, whatever the store returned, and
// its primary image (see PrimaryImage; null when none), so that a catalog
// grid needs no other request.
func (p Product) MarshalJSON() ([]byte, error) {
	type plain Product
	q := struct {
		plain
		PrimaryImage *Image `json:"primary_image"`
	}{plain: plain(p), PrimaryImage: p.PrimaryImage()}
	if q.Images == nil {
		q.Images = []Image{}
	}
	return json.Marshal(q)
}

// ProductInput holds the fields a client may set.
type ProductInput struct {
	UserID      int64  `json:"user_id"`
	SKU         string `json:"sku,omitempty"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Price       Price  `json:"price"`
	Currency    string `json:"currency"`
}

// InOrder is the products of ps in the order of ids; ids of none of them
// are left out.
func InOrder(ps []*Product, ids []string) []*Product {
	byID := make(map[string]*Product, len(ps))
	for _, p := range ps {
		byID[p.ID] = p
	}
	out := make([]*Product, 0, len(ids))
	for _, id := range ids {
		if p := byID[id]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Input returns the client-settable fields of p.
func (p *Product) Input() ProductInput {
	return ProductInput{UserID: p.UserID, SKU: p.SKU, Name: p.Name, Description: p.Description, Price: p.Price, Currency: p.Currency}
}

// Apply sets the client-settable fields of p from in.
func (p *Product) Apply(in ProductInput) {
	p.UserID, p.SKU, p.Name, p.Description, p.Price, p.Currency = in.UserID, in.SKU, in.Name, in.Description, in.Price, in.Currency
}

// ETag is the strong entity tag of the product's current representation.
func (p *Product) ETag() string {
	return fmt.Sprintf(`"%s.%d"`, p.ID, p.Version)
}

// Image returns the product's image with the given id.
func (p *Product) Image(id string) (*Image, bool) {
	for i := range p.Images {
		if p.Images[i].ID == id {
			return &p.Images[i], true
		}
	}
	return nil, false
}

// readOnlyFields are set by the server; they are accepted and ignored in
// client documents, so that a GET body can be edited and sent back.
var readOnlyFields = map[string]bool{"id": true, "created_at": true, "updated_at": true, "version": true, "images": true,
	"primary_image": true}

// productFields are the fields a client sets.
var productFields = map[string]bool{"name": true, "description": true, "price": true, "currency": true, "user_id": true, "sku": true}

// acceptedFields names the fields a client sets, for error details.
const acceptedFields = "accepted fields are name, description, price, currency, user_id, sku"

// CheckProductPatch refuses a merge patch of a product that names an
// unknown field, even to set it to null (which a merge would silently
// drop), or sets a field to a value no product may have. A patch that is
// not an object is left to MergePatch.
func CheckProductPatch(patch []byte) error {
	var doc map[string]json.RawMessage
	if json.Unmarshal(patch, &doc) != nil {
		return nil
	}
	var errs []FieldError
	for _, k := range sortedKeys(doc) {
		if !readOnlyFields[k] && !productFields[k] {
			errs = append(errs, FieldError{Field: k, Detail: "unknown field; " + acceptedFields})
		}
	}
	if len(errs) > 0 {
		return Invalid(errs)
	}
	// The values it sets: merged into a valid product, what is wrong can
	// only be the patch's, and is as wrong merged into any product. Judged
	// here, it is refused whatever the product's state (its ETag too).
	merged, err := MergePatch([]byte(`{"name":"n","price":"1","currency":"USD","user_id":1}`), patch)
	if err != nil {
		return err
	}
	_, err = ParseProductInput(merged)
	return err
}

// ParseProductInput decodes and validates a product document (POST/PUT
// body, or the result of a merge patch). Unknown fields are refused, so a
// typo never silently drops data. Every problem found is reported.
func ParseProductInput(data []byte) (ProductInput, error) {
	var in ProductInput
	doc, err := decodeObject(data)
	if err != nil {
		return in, err
	}
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	// stringField reads a string field: absent or null, it is missing (an
	// error when required); else it must be a string that check accepts
	// (check returns it as stored, or why it is refused).
	stringField := func(field string, required bool, check func(string) (string, string)) (string, bool) {
		raw, ok := present(doc, field)
		if !ok {
			if required {
				add(field, "is required")
			}
			return "", false
		}
		s, err := jsonString(raw)
		if err != nil {
			add(field, "must be a string, got %s", jsonType(raw))
			return "", false
		}
		v, detail := check(s)
		if detail != "" {
			add(field, "%s", detail)
			return "", false
		}
		return v, true
	}
	for _, k := range sortedKeys(doc) {
		switch {
		case readOnlyFields[k]:
		case productFields[k]:
		default:
			add(k, "unknown field; "+acceptedFields)
		}
	}

	// name: required string, 1-200 characters after trimming.
	if s, ok := stringField("name", true, validName); ok {
		in.Name = s
	}

	// sku: optional, 1-64 printable characters after trimming.
	if s, ok := stringField("sku", false, validSKU); ok {
		in.SKU = s
	}

	// description: optional string up to 10,000 characters.
	if s, ok := stringField("description", false, validDescription); ok {
		in.Description = s
	}

	// price: required decimal as a JSON string ("19.99"), or a whole
	// amount as a JSON number (19), never via float.
	if raw, ok := present(doc, "price"); !ok {
		add("price", "is required")
	} else {
		text, ok := priceText(raw)
		if !ok && jsonType(raw) == "number" {
			add("price", "as a JSON number must be a whole amount such as 19; send cents as a string such as \"19.99\", got %s", bytes.TrimSpace(raw))
		} else if !ok {
			add("price", "must be a string such as \"19.99\" or a whole number, got %s", jsonType(raw))
		} else if p, err := ParsePrice(text); err != nil {
			add("price", "%v", err)
		} else {
			in.Price = p
		}
	}

	// currency: optional ISO 4217 code, default USD.
	in.Currency = DefaultCurrency
	if s, ok := stringField("currency", false, validCurrency); ok {
		in.Currency = s
	}

	// user_id: required positive integer.
	if raw, ok := present(doc, "user_id"); !ok {
		add("user_id", "is required")
	} else {
		text, ok := integral(raw)
		if !ok {
			add("user_id", "must be a positive integer, got %s", jsonType(raw))
		} else if id, err := strconv.ParseInt(text, 10, 64); err != nil || id <= 0 {
			add("user_id", "must be a positive integer of at most 19 digits, got %s", text)
		} else {
			in.UserID = id
		}
	}

	if len(errs) > 0 {
		return in, Invalid(errs)
	}
	return in, nil
}

func summarize(errs []FieldError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Field + " " + e.Detail
	}
	return strings.Join(parts, "; ")
}

// present returns the raw value of key unless it is absent or JSON null.
func present(doc map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	raw, ok := doc[key]
	if !ok || string(bytes.TrimSpace(raw)) == "null" {
		return nil, false
	}
	return raw, true
}

func jsonString(raw json.RawMessage) (string, error) {
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// priceText is a price's decimal text: a JSON string as written, or a JSON
// number that is a whole amount.
func priceText(raw json.RawMessage) (string, bool) {
	switch jsonType(raw) {
	case "number":
		return integral(raw)
	case "string":
		s, err := jsonString(raw)
		return s, err == nil
	}
	return "", false
}

// integral returns the digits of a JSON number that is an integer, written
// without an exponent: 19, or 19.0 (an integer too, for JSON Schema).
func integral(raw json.RawMessage) (string, bool) {
	text := string(bytes.TrimSpace(raw))
	if jsonType(raw) != "number" || !json.Valid(raw) || strings.ContainsAny(text, "eE-") {
		return "", false
	}
	whole, frac, _ := strings.Cut(text, ".")
	if strings.Trim(frac, "0") != "" {
		return "", false
	}
	return whole, true
}

func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

func malformed(err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errorsAs(err, &syn):
		return &Error{Kind: KindInvalid, Code: "malformed_json", Detail: fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", syn, syn.Offset), Err: err}
	case errorsAs(err, &typ):
		return &Error{Kind: KindInvalid, Code: "malformed_json", Detail: "the body must be a JSON object, got " + typ.Value, Err: err}
	default:
		return &Error{Kind: KindInvalid, Code: "malformed_json", Detail: "the body is not valid JSON: " + err.Error(), Err: err}
	}
}

// ValidID reports whether id has the canonical lower-case UUID form that
// vitrine issues; anything else cannot name a product or an image.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// validName returns a product's name as stored, or why it is refused.
func validName(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", "must not be empty or only spaces"
	case n > MaxNameLength:
		return "", fmt.Sprintf("must be at most %d characters, got %d", MaxNameLength, n)
	case strings.ContainsFunc(s, unicode.IsControl):
		return "", "must not contain control characters"
	}
	return s, ""
}

// validDescription returns a product's description as stored, or why it
// is refused.
func validDescription(s string) (string, string) {
	if n := utf8.RuneCountInString(s); n > MaxDescriptionLength {
		return "", fmt.Sprintf("must be at most %d characters, got %d", MaxDescriptionLength, n)
	}
	return s, ""
}

// validCurrency returns a currency code as stored, or why it is refused.
func validCurrency(s string) (string, string) {
	if !ValidCurrency(s) {
		return "", fmt.Sprintf("must be an ISO 4217 code in upper case such as \"USD\" or \"EUR\", got %q", s)
	}
	return s, ""
}

// validSKU returns a SKU as stored, or why it is refused.
func validSKU(s string) (string, string) {
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", "must not be empty or only spaces; leave it out or send null for none"
	case n > MaxSKULength:
		return "", fmt.Sprintf("must be at most %d characters, got %d", MaxSKULength, n)
	case !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }):
		return "", "must be printable characters (letters, digits, punctuation, spaces)"
	}
	return s, ""
}
