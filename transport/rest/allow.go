package rest

import (
	"slices"
	"strings"
)

// patterns are the registered routes' methods by path pattern. The router
// prefers a static segment to a parameter (/products/export before
// /products/{id}), but its Allow header names the methods of every
// pattern a path matches; allow answers as the router routes.
type patterns map[string][]string

func (ps *patterns) add(method, pattern string) {
	if *ps == nil {
		*ps = patterns{}
	}
	if !slices.Contains((*ps)[pattern], method) {
		(*ps)[pattern] = append((*ps)[pattern], method)
	}
}

// allow is the Allow header of path: the methods of the patterns that
// match it with the most static segments, and OPTIONS (as the router
// says), sorted.
func (ps patterns) allow(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, methods := -1, []string{}
	for pattern, ms := range ps {
		n, ok := matchPattern(pattern, segs)
		switch {
		case !ok || n < best:
		case n > best:
			best, methods = n, slices.Clone(ms)
		default:
			methods = append(methods, ms...)
		}
	}
	methods = append(methods, "OPTIONS")
	slices.Sort(methods)
	return strings.Join(slices.Compact(methods), ", ")
}

// matchPattern reports whether segs match pattern, and how many of its
// segments are static. {name:*} matches the rest of the path.
func matchPattern(pattern string, segs []string) (int, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	static := 0
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, ":*}") {
			return static, len(segs) > i
		}
		if i >= len(segs) {
			return 0, false
		}
		switch {
		case strings.HasPrefix(p, "{"):
			if segs[i] == "" {
				return 0, false
			}
		case p == segs[i]:
			static++
		default:
			return 0, false
		}
	}
	return static, len(ps) == len(segs)
}

// shadowed lists, by pattern, the methods that a pattern with fewer static
// segments answers on its paths and it does not: the router would send
// those requests to the other pattern's handler (PUT /products/export to
// PUT /products/{id}).
func (ps patterns) shadowed() map[string][]string {
	out := map[string][]string{}
	for p, own := range ps {
		segs := strings.Split(strings.Trim(p, "/"), "/")
		mine, _ := matchPattern(p, segs)
		for q, ms := range ps {
			n, ok := matchPattern(q, segs)
			if q == p || !ok || n >= mine {
				continue
			}
			for _, m := range ms {
				if !slices.Contains(own, m) && !slices.Contains(out[p], m) {
					out[p] = append(out[p], m)
				}
			}
		}
	}
	return out
}
