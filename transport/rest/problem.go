package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// problem is an RFC 9457 problem details document.
type problem struct {
	Type      string               `json:"type"`
	Title     string               `json:"title"`
	Status    int                  `json:"status"`
	Detail    string               `json:"detail"`
	Instance  string               `json:"instance,omitempty"`
	Code      string               `json:"code"`
	Errors    []catalog.FieldError `json:"errors,omitempty"`
	RequestID string               `json:"request_id,omitempty"`
}

// problemType is the stable type URI of a problem code.
func problemType(code string) string { return "urn:vitrine:problem:" + code }

// statusOf is the one table from domain error kinds to HTTP statuses.
var statusOf = map[catalog.Kind]int{
	catalog.KindInvalid:            http.StatusBadRequest,
	catalog.KindNotFound:           http.StatusNotFound,
	catalog.KindPrecondition:       http.StatusPreconditionFailed,
	catalog.KindConflict:           http.StatusConflict,
	catalog.KindTooLarge:           http.StatusRequestEntityTooLarge,
	catalog.KindUnsupportedMedia:   http.StatusUnsupportedMediaType,
	catalog.KindUnprocessableImage: http.StatusUnprocessableEntity,
	catalog.KindUnavailable:        http.StatusServiceUnavailable,
	catalog.KindUnauthorized:       http.StatusUnauthorized,
	catalog.KindForbidden:          http.StatusForbidden,
	catalog.KindTooManyRequests:    http.StatusTooManyRequests,
	catalog.KindUnprocessable:      http.StatusUnprocessableEntity,
	catalog.KindNotAcceptable:      http.StatusNotAcceptable,
	catalog.KindInternal:           http.StatusInternalServerError,
}

// writeError answers with the problem err describes. Internal errors keep
// their text out of the answer; the request log line carries it.
func writeError(ctx *fasthttp.RequestCtx, err error) {
	var e *catalog.Error
	if !errors.As(err, &e) || statusOf[e.Kind] == 0 || e.Kind == catalog.KindInternal {
		exchangeOf(ctx).err = err
		writeProblem(ctx, http.StatusInternalServerError, "internal", "an internal error occurred; the request id identifies it in the logs", nil)
		return
	}
	switch {
	case e.RetryAfter > 0:
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(ceilSeconds(e.RetryAfter)))
	case e.Kind == catalog.KindUnavailable || e.Kind == catalog.KindTooManyRequests:
		ctx.Response.Header.Set("Retry-After", "5")
	}
	if e.Kind == catalog.KindUnavailable {
		exchangeOf(ctx).err = err
	}
	writeProblem(ctx, statusOf[e.Kind], e.Code, e.Detail, e.Fields)
}

func writeProblem(ctx *fasthttp.RequestCtx, status int, code, detail string, fields []catalog.FieldError) {
	p := problem{
		Type:     problemType(code),
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   detail,
		Instance: string(ctx.Path()),
		Code:     code,
		Errors:   fields,
	}
	x := exchangeOf(ctx)
	p.RequestID = x.requestID()
	body, _ := json.Marshal(p)
	x.problem = code
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/problem+json")
	ctx.SetBody(body)
}

// writeJSON answers status with v as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}
