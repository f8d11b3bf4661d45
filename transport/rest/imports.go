package rest

import (
	"bufio"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/catalog"
)

// Imports accepts catalog files and tells how their rows were applied.
type Imports interface {
	// Accept stores the import and the rows next yields (nothing when
	// next fails) and has them applied in the background.
	Accept(ctx context.Context, imp *catalog.Import, next func() (catalog.ImportRow, error)) error
	Get(ctx context.Context, id string) (*catalog.Import, error)
	Errors(ctx context.Context, id string, afterLine, limit int) ([]catalog.ImportRowError, error)
}

// acceptTimeout bounds reading and storing an import file: far longer
// than a request's, as a file may hold 100,000 rows (the body's own read
// timeout still applies).
const acceptTimeout = 10 * time.Minute

// importErrorsShown is how many row errors an import's representation
// holds; GET /imports/{id}/errors streams them all.
const importErrorsShown = 100

// importView is an import as GET /imports/{id} shows it.
type importView struct {
	*catalog.Import
	Rows struct {
		Total   int `json:"total"`
		Applied int `json:"applied"`
		Failed  int `json:"failed"`
		Pending int `json:"pending"`
	} `json:"rows"`
	Errors     []catalog.ImportRowError `json:"errors"`
	MoreErrors bool                     `json:"more_errors"`
	Links      map[string]string        `json:"links"`
}

func (s *Server) createImport(ctx *fasthttp.RequestCtx, who principal) {
	format := ""
	switch mt, _, _ := mime.ParseMediaType(string(ctx.Request.Header.ContentType())); mt {
	case "application/x-ndjson", "application/jsonl", "application/jsonlines":
		format = "ndjson"
	case "text/csv":
		format = "csv"
	default:
		writeError(ctx, catalog.Errorf(catalog.KindUnsupportedMedia, "unsupported_content_type",
			"an import is application/x-ndjson (one product per line) or text/csv (a header row, then one product per record), got %q", ctx.Request.Header.ContentType()))
		return
	}
	limit := s.cfg.MaxImportBytes
	if n := ctx.Request.Header.ContentLength(); n > limit {
		s.lingerClose(ctx)
		writeError(ctx, catalog.Errorf(catalog.KindTooLarge, "body_too_large", "the file is %d bytes, over the limit of %d (VITRINE_IMPORT_MAX_BYTES)", n, limit))
		return
	}
	body := &capped{r: ctx.RequestBodyStream(), left: int64(limit), limit: int64(limit)}
	next := ndjsonRows(body, s.cfg.MaxImportRows)
	if format == "csv" {
		next = csvRows(body, s.cfg.MaxImportRows)
	}
	imp := &catalog.Import{ID: s.deps.NewID(), Owner: who.owner, Format: format, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	c, cancel := context.WithTimeout(traceCtx(ctx), acceptTimeout)
	defer cancel()
	if err := s.deps.Imports.Accept(c, imp, next); err != nil {
		if catalog.ErrorKind(err) == catalog.KindTooLarge {
			s.lingerClose(ctx)
		}
		writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/imports/"+imp.ID)
	s.writeImport(ctx, http.StatusAccepted, imp, nil)
}

// importOf returns the import the caller may see: its owner's, or any
// for a key bound to no owner.
func (s *Server) importOf(ctx *fasthttp.RequestCtx, who principal) (*catalog.Import, bool) {
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	id := pathID(ctx, "id")
	imp, err := s.deps.Imports.Get(c, id)
	if err == nil && who.owner != 0 && imp.Owner != who.owner {
		err = catalog.NotFound("import %s does not exist", id) // another owner's: not even its existence
	}
	if err != nil {
		writeError(ctx, err)
		return nil, false
	}
	return imp, true
}

func (s *Server) getImport(ctx *fasthttp.RequestCtx, who principal) {
	imp, ok := s.importOf(ctx, who)
	if !ok {
		return
	}
	c, cancel := s.reqCtx(ctx)
	defer cancel()
	errs, err := s.deps.Imports.Errors(c, imp.ID, 0, importErrorsShown)
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.writeImport(ctx, http.StatusOK, imp, errs)
}

func (s *Server) writeImport(ctx *fasthttp.RequestCtx, status int, imp *catalog.Import, errs []catalog.ImportRowError) {
	v := importView{Import: imp, Errors: errs, MoreErrors: imp.Failed > len(errs),
		Links: map[string]string{"self": "/imports/" + imp.ID, "errors": "/imports/" + imp.ID + "/errors"}}
	if v.Errors == nil {
		v.Errors = []catalog.ImportRowError{}
	}
	v.Rows.Total, v.Rows.Applied, v.Rows.Failed = imp.Total, imp.Applied, imp.Failed
	v.Rows.Pending = imp.Total - imp.Applied - imp.Failed
	ctx.Response.Header.Set("Cache-Control", "no-store")
	writeJSON(ctx, status, v)
}

// importErrors streams every row error of an import as NDJSON, in line
// order, a page at a time.
func (s *Server) importErrors(ctx *fasthttp.RequestCtx, who principal) {
	imp, ok := s.importOf(ctx, who)
	if !ok {
		return
	}
	ctx.SetStatusCode(http.StatusOK)
	ctx.SetContentType("application/x-ndjson")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if ctx.IsHead() {
		return
	}
	imports, log, id := s.deps.Imports, s.log, imp.ID
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		after := 0
		for {
			c, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
			errs, err := imports.Errors(c, id, after, 500)
			cancel()
			if err != nil {
				log.Warn("stream import errors", zap.String("import_id", id), zap.Error(err))
				return // the client sees the stream end early
			}
			for _, e := range errs {
				b, _ := json.Marshal(e)
				_, _ = w.Write(append(b, '\n'))
				after = e.Line
			}
			if len(errs) < 500 || w.Flush() != nil {
				return
			}
		}
	})
}
