package rest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vitrine-dev/vitrine/catalog"
)

// An import file is read as it streams in, one row at a time: NDJSON (one
// product object per line) or CSV (a header row, then one product per
// record). Each row becomes the JSON document the import runner applies:
// the product's fields and "images": [{"url", "alt"}]. What makes the
// file unreadable (bad UTF-8, a line that is not a JSON object, a record
// with the wrong number of fields, an unknown column, too many rows)
// refuses the whole file, naming its first bad line; what is wrong with
// a row's values fails that row alone, when it is applied.

// maxImportLine bounds one NDJSON line or CSV record.
const maxImportLine = 1 << 20

// fileError refuses a file at one of its lines.
func fileError(line int, format string, args ...any) *catalog.Error {
	detail := fmt.Sprintf(format, args...)
	return &catalog.Error{Kind: catalog.KindInvalid, Code: "malformed_file", Detail: fmt.Sprintf("line %d: %s", line, detail),
		Fields: []catalog.FieldError{{Field: "line " + strconv.Itoa(line), Detail: detail}}}
}

func tooManyRows(limit int) *catalog.Error {
	return catalog.Errorf(catalog.KindTooLarge, "too_many_rows", "the file has more than %d rows, the most one import takes (VITRINE_IMPORT_MAX_ROWS); split it", limit)
}

// capped reads at most limit bytes of r and fails with body_too_large
// after.
type capped struct {
	r     io.Reader
	left  int64
	limit int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		if n, _ := io.ReadFull(c.r, one[:]); n > 0 {
			return 0, catalog.Errorf(catalog.KindTooLarge, "body_too_large", "the file is over the limit of %d bytes (VITRINE_IMPORT_MAX_BYTES)", c.limit)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// ndjsonRows yields the rows of an NDJSON file: every line that is not
// blank must be one JSON object.
func ndjsonRows(r io.Reader, maxRows int) func() (catalog.ImportRow, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	line, rows := 0, 0
	return func() (catalog.ImportRow, error) {
		for {
			text, err := readLine(br, line+1)
			if err != nil {
				return catalog.ImportRow{}, err
			}
			if text == nil {
				return catalog.ImportRow{}, io.EOF
			}
			line++
			text = bytes.TrimSpace(text)
			if line == 1 {
				text = bytes.TrimPrefix(text, []byte("\uFEFF"))
			}
			if len(text) == 0 {
				continue
			}
			if !utf8.Valid(text) {
				return catalog.ImportRow{}, fileError(line, "is not UTF-8")
			}
			if err := jsonObject(text); err != nil {
				return catalog.ImportRow{}, fileError(line, "%v", err)
			}
			rows++
			if rows > maxRows {
				return catalog.ImportRow{}, tooManyRows(maxRows)
			}
			return catalog.ImportRow{Line: line, Doc: slices.Clone(text), SKU: skuOf(text)}, nil
		}
	}
}

// readLine reads one line (without its end) of at most maxImportLine
// bytes; nil at the end of the input.
func readLine(br *bufio.Reader, number int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxImportLine {
			return nil, fileError(number, "is longer than %d bytes", maxImportLine)
		}
		switch {
		case err == nil:
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, nil
			}
			return line, nil
		default:
			return nil, readError(err)
		}
	}
}

// jsonObject checks that text is exactly one JSON object.
func jsonObject(text []byte) error {
	dec := json.NewDecoder(bytes.NewReader(text))
	var doc map[string]json.RawMessage
	if err := dec.Decode(&doc); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fmt.Errorf("must be a JSON object (one product), got %s", typ.Value)
		}
		return fmt.Errorf("is not valid JSON: %w", err)
	}
	if doc == nil {
		return errors.New("must be a JSON object (one product), got null")
	}
	if dec.More() {
		return errors.New("holds more than one JSON value; put one product per line")
	}
	return nil
}

// csvColumns are the columns a CSV file may have, besides image_N_url and
// image_N_alt (N from 1); id (as an export writes it) is read and ignored.
var csvColumns = map[string]bool{"id": true, "sku": true, "name": true, "description": true, "price": true, "currency": true, "user_id": true}

var imageColumn = regexp.MustCompile(`^image_([1-9]\d{0,2})_(url|alt)$`)

// csvRows yields the rows of a CSV file with a header row. Quoted fields
// may hold commas, quotes ("") and line breaks; lines may end in CRLF or
// LF; a UTF-8 byte order mark is skipped. An empty cell leaves its field
// out.
func csvRows(r io.Reader, maxRows int) func() (catalog.ImportRow, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\uFEFF" {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	var header []string
	rows := 0
	return func() (catalog.ImportRow, error) {
		if header == nil {
			h, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return catalog.ImportRow{}, fileError(1, "the file is empty; a CSV import starts with a header row such as sku,name,price,currency,user_id,image_1_url,image_1_alt")
			}
			if err != nil {
				return catalog.ImportRow{}, csvError(err)
			}
			if header, err = csvHeader(h); err != nil {
				return catalog.ImportRow{}, err
			}
		}
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return catalog.ImportRow{}, io.EOF
		}
		if err != nil {
			return catalog.ImportRow{}, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		rows++
		if rows > maxRows {
			return catalog.ImportRow{}, tooManyRows(maxRows)
		}
		doc, err := csvDoc(header, rec, line)
		if err != nil {
			return catalog.ImportRow{}, err
		}
		return catalog.ImportRow{Line: line, Doc: doc, SKU: skuOf(doc)}, nil
	}
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return fileError(pe.StartLine, "has a different number of fields than the header row")
		}
		return fileError(pe.Line, "%v", pe.Err)
	}
	return readError(err)
}

// csvHeader checks the header row and returns its columns.
func csvHeader(h []string) ([]string, error) {
	cols := make([]string, len(h))
	seen := map[string]bool{}
	for i, c := range h {
		c = strings.TrimSpace(c)
		if !utf8.ValidString(c) {
			return nil, fileError(1, "is not UTF-8")
		}
		if !csvColumns[c] && !imageColumn.MatchString(c) {
			return nil, fileError(1, "unknown column %q; columns are id (ignored), sku, name, description, price, currency, user_id, image_N_url and image_N_alt (N from 1)", c)
		}
		if seen[c] {
			return nil, fileError(1, "the column %q is given twice", c)
		}
		seen[c], cols[i] = true, c
	}
	return cols, nil
}

// csvDoc is the JSON document of one record.
func csvDoc(header, rec []string, line int) ([]byte, error) {
	doc := map[string]any{}
	type image struct {
		URL string  `json:"url"`
		Alt *string `json:"alt,omitempty"`
	}
	images := map[int]*image{}
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return nil, fileError(line, "is not UTF-8")
		}
		if len(v) > maxImportLine {
			return nil, fileError(line, "has a field longer than %d bytes", maxImportLine)
		}
		if v == "" {
			continue
		}
		col := header[i]
		if m := imageColumn.FindStringSubmatch(col); m != nil {
			n, _ := strconv.Atoi(m[1])
			if images[n] == nil {
				images[n] = &image{}
			}
			if m[2] == "url" {
				images[n].URL = strings.TrimSpace(v)
			} else {
				images[n].Alt = &v
			}
			continue
		}
		if col == "user_id" {
			if t := strings.TrimSpace(v); t != "" && strings.Trim(t, "0123456789") == "" {
				doc[col] = json.Number(t) // a number, as in JSON
				continue
			}
		}
		doc[col] = v
	}
	if len(images) > 0 {
		ns := make([]int, 0, len(images))
		for n := range images {
			ns = append(ns, n)
		}
		slices.Sort(ns)
		list := make([]*image, len(ns))
		for i, n := range ns {
			list[i] = images[n]
		}
		doc["images"] = list
	}
	return json.Marshal(doc)
}

// skuOf is the SKU of a row's document as its product will have it
// (trimmed), "" when it has none or one of another type.
func skuOf(doc []byte) string {
	var row struct {
		SKU any `json:"sku"`
	}
	_ = json.Unmarshal(doc, &row)
	sku, _ := row.SKU.(string)
	return strings.TrimSpace(sku)
}
