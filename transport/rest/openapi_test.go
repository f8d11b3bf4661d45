package rest

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/vitrine-dev/vitrine/transport/urlfetch"
)

type fakeFiles struct{}

func (fakeFiles) Path(string) (string, error) { return "", nil }

// TestOpenAPIMatchesRoutes fails when a route exists that the document
// lacks, or the document describes an operation that no route serves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := New(Config{}, Deps{Files: fakeFiles{}, Imports: fakeImports{}}, zap.NewNop())
	param := regexp.MustCompile(`\{([a-z_]+)(:[^}]*)?\}`)
	var routes []string
	for _, r := range s.Routes() {
		routes = append(routes, param.ReplaceAllString(r, "{$1}"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi version = %q, want 3.1.0", doc.OpenAPI)
	}
	var documented []string
	ids := map[string]bool{}
	servedBy := map[string]string{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op struct {
				OperationID string `json:"operationId"`
				ServedBy    string `json:"x-served-by"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			ids[op.OperationID] = true
			if op.ServedBy != "" {
				// A shape of another route's path (the on-demand URLs
				// of /media/{key}), documented on its own.
				servedBy[path] = op.ServedBy
				continue
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	for path, by := range servedBy {
		if !ids[by] || !strings.HasPrefix(path, "/media/") || by != "getMedia" {
			t.Errorf("%s is served by %q: want getMedia, the route of /media/{key}", path, by)
		}
	}
	sort.Strings(routes)
	sort.Strings(documented)
	if strings.Join(routes, "\n") != strings.Join(documented, "\n") {
		t.Errorf("routes and openapi.json differ\nroutes:\n  %s\ndocumented:\n  %s", strings.Join(routes, "\n  "), strings.Join(documented, "\n  "))
	}
}

// TestOpenAPIImportPattern: the document publishes the very pattern that
// import URLs are checked against.
func TestOpenAPIImportPattern(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Pattern string `json:"pattern"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if got, want := doc.Components.Schemas["ImportRequest"].Properties["url"].Pattern, urlfetch.URLPattern.String(); got != want {
		t.Errorf("ImportRequest.url pattern in openapi.json:\n%s\nurlfetch.URLPattern:\n%s", got, want)
	}
}

// fakeImports stands for the import service: routes exist only with one.
type fakeImports struct{ Imports }
