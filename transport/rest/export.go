package rest

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// exportPage is how many products an export reads at once.
const exportPage = 100

// exportRow is a product as an export writes it: the document an import
// reads back (the product's fields and its images' URLs and alt texts),
// with its id.
type exportRow struct {
	ID          string        `json:"id"`
	SKU         string        `json:"sku,omitempty"`
	UserID      int64         `json:"user_id"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Price       catalog.Price `json:"price"`
	Currency    string        `json:"currency"`
	Images      []exportImage `json:"images"`
}

type exportImage struct {
	URL string `json:"url"`
	Alt string `json:"alt"`
}

// exportRowOf is the export row of a rendered product. An image's URL is
// where it was imported from, else its largest variant (JPEG when it has
// one); images with neither (not processed yet, or failed) are left out.
func exportRowOf(body []byte) (exportRow, error) {
	var p catalog.Product
	if err := json.Unmarshal(body, &p); err != nil {
		return exportRow{}, err
	}
	row := exportRow{ID: p.ID, SKU: p.SKU, UserID: p.UserID, Name: p.Name, Description: p.Description,
		Price: p.Price, Currency: p.Currency, Images: []exportImage{}}
	for _, img := range p.Images {
		url := img.SourceURL
		best := -1
		for i, v := range img.Variants {
			if !v.Ready() {
				continue
			}
			if best < 0 || v.Width > img.Variants[best].Width || (v.Width == img.Variants[best].Width && v.Format == "jpeg") {
				best = i
			}
		}
		if url == "" && best >= 0 {
			url = img.Variants[best].URL
		}
		if url != "" {
			row.Images = append(row.Images, exportImage{URL: url, Alt: img.Alt})
		}
	}
	return row, nil
}

// exportFormat is the format Accept asks for: NDJSON unless it prefers
// CSV; "" when it accepts neither.
func exportFormat(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return "ndjson"
	}
	best, bestQ := "", 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		format := ""
		switch mt {
		case "application/x-ndjson", "application/jsonl", "*/*", "application/*":
			format = "ndjson"
		case "text/csv", "text/*":
			format = "csv"
		}
		if format != "" && q > bestQ {
			best, bestQ = format, q
		}
	}
	return best
}

// exportProducts streams every product the caller may read that matches
// the list's filters, newest first, as NDJSON (one product per line) or
// CSV, a page at a time: its memory does not grow with the catalog. CSV
// has as many image columns as the product with the most images; it is
// found by a first pass.
func (s *Server) exportProducts(ctx *fasthttp.RequestCtx, who principal) {
	args := ctx.QueryArgs()
	if args.Has("limit") || args.Has("cursor") {
		writeError(ctx, catalog.Errorf(catalog.KindInvalid, "invalid_query", "an export takes the list's filters (user_id, min_price, max_price, q), not limit or cursor"))
		return
	}
	f, err := parseFilter(args)
	if err != nil {
		writeError(ctx, err)
		return
	}
	if who.owner != 0 {
		if f.UserID != 0 && f.UserID != who.owner {
			writeError(ctx, catalog.Forbidden("this key may export only the products of user_id %d", who.owner))
			return
		}
		f.UserID = who.owner
	}
	format := exportFormat(string(ctx.Request.Header.Peek("Accept")))
	if format == "" {
		writeError(ctx, catalog.Errorf(catalog.KindNotAcceptable, "not_acceptable", "an export is application/x-ndjson or text/csv; Accept names neither"))
		return
	}
	ctx.SetStatusCode(http.StatusOK)
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.Response.Header.Set("Vary", "Accept")
	if format == "csv" {
		ctx.SetContentType("text/csv; charset=utf-8")
	} else {
		ctx.SetContentType("application/x-ndjson")
	}
	if ctx.IsHead() {
		return
	}
	products, log := s.products, s.log
	timeout := s.cfg.RequestTimeout
	// each calls fn with every product of the export, a page at a time.
	each := func(fn func(exportRow) error) error {
		page := f
		page.Limit = exportPage
		for {
			c, cancel := context.WithTimeout(context.Background(), timeout)
			items, err := products.List(c, page)
			cancel()
			if err != nil {
				return err
			}
			for _, p := range items {
				row, err := exportRowOf(p.Body)
				if err != nil {
					return fmt.Errorf("product %s: %w", p.ID, err)
				}
				if err := fn(row); err != nil {
					return err
				}
			}
			if len(items) < exportPage {
				return nil
			}
			page.After = items[len(items)-1].ID
		}
	}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		var err error
		if format == "csv" {
			err = writeCSVExport(w, each)
		} else {
			err = each(func(row exportRow) error {
				b, err := json.Marshal(row)
				if err != nil {
					return err
				}
				_, err = w.Write(append(b, '\n'))
				return err
			})
		}
		if err != nil {
			// The status is sent: the stream ends early, and the client
			// sees a file cut short (CSV: a record missing its fields).
			log.Warn("export ended early", zap.Error(err))
		}
		_ = w.Flush()
	})
}

// writeCSVExport writes the header (with image columns for the product
// with the most images) and one record per product.
func writeCSVExport(w *bufio.Writer, each func(func(exportRow) error) error) error {
	most := 0
	if err := each(func(row exportRow) error { most = max(most, len(row.Images)); return nil }); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	header := []string{"id", "sku", "name", "description", "price", "currency", "user_id"}
	for i := 1; i <= most; i++ {
		header = append(header, fmt.Sprintf("image_%d_url", i), fmt.Sprintf("image_%d_alt", i))
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	rec := make([]string, len(header))
	err := each(func(row exportRow) error {
		clear(rec)
		rec[0], rec[1], rec[2], rec[3] = row.ID, row.SKU, row.Name, row.Description
		rec[4], rec[5], rec[6] = row.Price.String(), row.Currency, strconv.FormatInt(row.UserID, 10)
		for i, img := range row.Images[:min(len(row.Images), most)] { // one that gained images since the first pass keeps the first ones
			rec[7+2*i], rec[8+2*i] = img.URL, img.Alt
		}
		return cw.Write(rec)
	})
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}
