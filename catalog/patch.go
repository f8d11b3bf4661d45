package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// MergePatch applies an RFC 7396 JSON merge patch to doc and returns the result.
func MergePatch(doc, patch []byte) ([]byte, error) {
	// Numbers stay as written (json.Number): through float64, a large
	// user_id would lose digits.
	p, err := decodeNumbers(patch)
	if err != nil {
		return nil, malformed(err)
	}
	if _, ok := p.(map[string]any); !ok {
		return nil, Errorf(KindInvalid, "malformed_patch", "a merge patch must be a JSON object")
	}
	d, err := decodeNumbers(doc)
	if err != nil {
		return nil, err
	}
	return json.Marshal(mergeValue(d, p))
}

// decodeNumbers decodes one JSON value, keeping numbers as json.Number.
func decodeNumbers(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, Errorf(KindInvalid, "malformed_json", "the body holds more than one JSON value")
	}
	return v, nil
}

// IntegralInt64 reads the text of an integer as JSON Schema counts them:
// digits, optionally with a zero fraction ("5" or "5.0"), no exponent.
func IntegralInt64(text string) (int64, bool) {
	digits, ok := integral(json.RawMessage(text))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	return n, err == nil
}

func mergeValue(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergeValue(tm[k], v)
	}
	return tm
}
