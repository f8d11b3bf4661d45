package actors

import (
	"bytes"
	"errors"
	"strings"

	"github.com/vitrine-dev/vitrine/actors/actorspb"
	"github.com/vitrine-dev/vitrine/catalog"
)

// toProblem carries err across the actor boundary. Errors that are not
// catalog errors become internal ones without their text, which stays in
// the node's log.
func toProblem(err error) *actorspb.Problem {
	var e *catalog.Error
	if !errors.As(err, &e) {
		return &actorspb.Problem{Kind: string(catalog.KindInternal), Code: "internal", Detail: "an internal error occurred"}
	}
	p := &actorspb.Problem{Kind: string(e.Kind), Code: e.Code, Detail: e.Detail}
	for _, f := range e.Fields {
		p.Fields = append(p.Fields, &actorspb.FieldError{Field: f.Field, Detail: f.Detail})
	}
	return p
}

func fromProblem(p *actorspb.Problem) *catalog.Error {
	e := &catalog.Error{Kind: catalog.Kind(p.Kind), Code: p.Code, Detail: p.Detail}
	for _, f := range p.Fields {
		e.Fields = append(e.Fields, catalog.FieldError{Field: f.Field, Detail: f.Detail})
	}
	return e
}

// A cached product is its ETag, a NUL byte, then its JSON.
func encodeCached(etag string, body []byte) []byte {
	v := make([]byte, 0, len(etag)+1+len(body))
	v = append(v, etag...)
	v = append(v, 0)
	return append(v, body...)
}

func decodeCached(v []byte) (etag string, body []byte, ok bool) {
	i := bytes.IndexByte(v, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(v[:i]), v[i+1:], true
}

// splitTags splits an If-Match or If-None-Match header into entity tags;
// weak tags compare by their opaque part.
func splitTags(header string) []string {
	var tags []string
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		t = strings.TrimPrefix(t, "W/")
		if t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}
