package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ParseRecipe reads a recipe from JSON, strictly, and validates it:
//
//	{"version": 2, "variants": [
//	  {"name": "thumb", "width": 200, "height": 200, "fit": "cover",
//	   "formats": [{"format": "webp", "quality": 80}, {"format": "avif", "quality": 55}]}]}
//
// Strict means: one JSON object and nothing after it; no field the recipe
// does not know, in any object; field names spelt exactly (encoding/json
// alone would also take "Width" or "WIDTH"); no field twice in an object;
// numbers where numbers belong (a width of 200.5 or "200" is refused);
// formats by name ("webp", "jpeg" or "jpg", "avif"). "fit" may be left out
// and means "inside". Errors are of kind KindInvalid, code
// "invalid_recipe", and say where in the text the problem is.
func ParseRecipe(data []byte) (Recipe, error) {
	if len(data) > MaxRecipeBytes {
		return Recipe{}, invalidRecipe("the recipe is %d bytes; the limit is %d", len(data), MaxRecipeBytes)
	}
	if err := checkRecipeKeys(data); err != nil {
		return Recipe{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return Recipe{}, jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Recipe{}, invalidRecipe("recipe JSON at %s: unexpected data after the recipe object", position(data, dec.InputOffset()))
	}
	if err := r.Validate(); err != nil {
		return Recipe{}, err
	}
	return r, nil
}

// recipeKeys are the JSON field names of each kind of recipe object.
var recipeKeys = map[string][]string{
	"recipe":   {"version", "variants"},
	"variant":  {"name", "width", "height", "fit", "formats"},
	"encoding": {"format", "quality"},
}

// checkRecipeKeys walks the JSON tokens and refuses, in any object, a key
// that is not exactly one of the recipe's field names, or a key given
// twice; encoding/json matches names case-insensitively and keeps the last
// of duplicates. Misplaced but known keys are left to DisallowUnknownFields.
func checkRecipeKeys(data []byte) error {
	known := map[string]bool{}
	for _, keys := range recipeKeys {
		for _, k := range keys {
			known[k] = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next token in this object is a key
	}
	var stack []*frame
	for {
		offset := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return jsonError(data, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key := tok.(string) // the decoder guarantees a string key here
			for offset < int64(len(data)) && strings.IndexByte(" \t\r\n,", data[offset]) >= 0 {
				offset++ // point at the key, not the separator before it
			}
			switch {
			case !known[key]:
				hint := ""
				if known[strings.ToLower(key)] {
					hint = fmt.Sprintf(" (field names are lower case: %q)", strings.ToLower(key))
				}
				return invalidRecipe("recipe JSON at %s: unknown field %q%s", position(data, offset), key, hint)
			case top.keys[key]:
				return invalidRecipe("recipe JSON at %s: field %q appears twice in one object", position(data, offset), key)
			}
			top.keys[key] = true
			top.expect = false
			continue
		}
		if top != nil && top.object {
			top.expect = true // this token is a value; a key follows
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expect = true
			}
		}
	}
}

// jsonError turns an encoding/json error into an invalid_recipe error that
// says where in data it happened.
func jsonError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// encoding/json (Go 1.27) reports the offset just past an invalid
		// character; the position names the character itself.
		offset := syntax.Offset
		if c, ok := invalidChar(syntax.Error()); ok && offset > 0 && offset <= int64(len(data)) && data[offset-1] == c {
			offset--
		}
		return invalidRecipe("recipe JSON at %s: %s", position(data, offset), syntax.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "the recipe"
		}
		return invalidRecipe("recipe JSON at %s: %s must be a %s, not a JSON %s", position(data, typ.Offset), field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return invalidRecipe("recipe JSON: the text ends before the recipe does")
	}
	return invalidRecipe("recipe JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// invalidChar is the character an "invalid character 'c' …" message names.
func invalidChar(msg string) (byte, bool) {
	const prefix = "invalid character '"
	i := strings.Index(msg, prefix)
	if i < 0 || len(msg) < i+len(prefix)+2 || msg[i+len(prefix)+1] != '\'' {
		return 0, false
	}
	return msg[i+len(prefix)], true
}

// position renders a byte offset in data as "line L, column C (byte B)".
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(offset) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d (byte %d)", line, col, offset)
}
