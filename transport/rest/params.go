package rest

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/vitrine-dev/vitrine/catalog"
)

// What routes read from a request's path and query.

// pathID is the value of the path parameter name.
func pathID(ctx *fasthttp.RequestCtx, name string) string {
	v, _ := ctx.UserValue(name).(string)
	return v
}

// onlyParams refuses query parameters other than names.
func onlyParams(args *fasthttp.Args, names ...string) error {
	var errs []catalog.FieldError
	seen := map[string]bool{}
	for k := range args.All() {
		key := string(k)
		known := false
		for _, n := range names {
			known = known || n == key
		}
		switch {
		case !known:
			errs = append(errs, catalog.FieldError{Field: key, Detail: "unknown query parameter"})
		case seen[key]:
			errs = append(errs, catalog.FieldError{Field: key, Detail: "given more than once"})
		}
		seen[key] = true
	}
	if len(errs) == 0 {
		return nil
	}
	return &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_query", Detail: errs[0].Field + " " + errs[0].Detail, Fields: errs}
}

// queryLimit reads ?limit (1…most, default def) and refuses any other
// parameter; it answers and returns false when the query is wrong.
func queryLimit(ctx *fasthttp.RequestCtx, def, most int) (int, bool) {
	limit := def
	if v := ctx.QueryArgs().Peek("limit"); ctx.QueryArgs().Has("limit") {
		n, ok := catalog.IntegralInt64(string(v))
		if !ok || n < 1 || n > int64(most) {
			writeError(ctx, &catalog.Error{Kind: catalog.KindInvalid, Code: "invalid_query",
				Detail: fmt.Sprintf("limit must be an integer from 1 to %d, got %q", most, v),
				Fields: []catalog.FieldError{{Field: "limit", Detail: fmt.Sprintf("must be an integer from 1 to %d", most)}}})
			return 0, false
		}
		limit = int(n)
	}
	if err := onlyParams(ctx.QueryArgs(), "limit"); err != nil {
		writeError(ctx, err)
		return 0, false
	}
	return limit, true
}
