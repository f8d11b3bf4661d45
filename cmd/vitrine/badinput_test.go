package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBadInput(t *testing.T) { testBadInput(t, nil) }

func testBadInput(t *testing.T, env map[string]string) {
	app := startApp(t, t.TempDir(), env)
	p := app.createProduct(`{"name":"Target","price":"1","user_id":1}`)
	id := p["id"].(string)

	t.Run("json", func(t *testing.T) {
		for name, body := range map[string]string{
			"malformed":        `{"name":"x",`,
			"not an object":    `"hello"`,
			"wrong types":      `{"name":1,"price":[],"user_id":"x"}`,
			"unknown field":    `{"name":"x","price":1,"user_id":1,"stock":"A"}`,
			"empty":            ``,
			"invalid utf8 key": "{\"\xff\":1}",
		} {
			expectProblem(t, app.doJSON("POST", "/products", body), 400, name)
		}
		pr := expectProblem(t, app.doJSON("POST", "/products", `{"name":"","price":"19.999","user_id":0}`), 400, "three bad fields")
		if errs, _ := pr["errors"].([]any); len(errs) != 3 {
			t.Errorf("errors = %v, want one per field", pr["errors"])
		}
		expectProblem(t, app.do("POST", "/products", strings.NewReader(`name=x`), "Content-Type", "application/x-www-form-urlencoded"), 415, "form body")
		expectProblem(t, app.do("PATCH", "/products/"+id, strings.NewReader(`[{"op":"replace"}]`), "Content-Type", "application/json"), 400, "JSON patch array")
		expectProblem(t, app.do("DELETE", "/products", nil), 405, "method not allowed")
		expectProblem(t, app.do("GET", "/nowhere", nil), 404, "unknown route")
	})

	t.Run("30 MiB JSON body", func(t *testing.T) {
		expectProblem(t, oversized(t, app, "/products", "application/json", 30<<20), 413, "30 MiB JSON")
		if r := app.do("GET", "/healthz", nil); r.Status != http.StatusOK {
			t.Fatalf("healthz after: %d", r.Status)
		}
		// 2 MiB is within the transport limit but over the JSON limit.
		body2 := `{"name":"` + strings.Repeat("a", 2<<20) + `","price":1,"user_id":1}`
		expectProblem(t, app.doJSON("POST", "/products", body2), 413, "2 MiB JSON")
	})

	t.Run("uploads", func(t *testing.T) {
		expectProblem(t, app.uploadBytes(id, "empty.jpg", nil, true), 400, "empty multipart upload")
		expectProblem(t, app.uploadBytes(id, "empty.jpg", nil, false), 400, "empty raw upload")
		expectProblem(t, app.uploadBytes(id, "photo.jpg", []byte("just some text, not a photo\n"), true), 415, "text named photo.jpg")
		svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`)
		expectProblem(t, app.do("POST", "/products/"+id+"/images", bytes.NewReader(svg), "Content-Type", "image/svg+xml"), 415, "SVG")
		expectProblem(t, app.do("POST", "/products/"+id+"/images", strings.NewReader("x"), "Content-Type", "text/plain"), 415, "text/plain body")
		jpeg, err := os.ReadFile(filepath.Join(corpusDir(t), "gray_hopper.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		expectProblem(t, app.uploadBytes("01937a4e-7b8c-7def-8a12-3456789abcde", "a.jpg", jpeg, true), 404, "unknown product")
		body, ct := multipartBody(t, "picture", "a.jpg", jpeg)
		expectProblem(t, app.do("POST", "/products/"+id+"/images", body, "Content-Type", ct), 400, "wrong multipart field")
		expectProblem(t, oversized(t, app, "/products/"+id+"/images", "image/jpeg", 30<<20), 413, "30 MiB upload")
		// Just over the 25 MiB limit, sent whole: refused by the handler.
		big := append(append([]byte{}, jpeg...), make([]byte, 25<<20)...)
		expectProblem(t, app.uploadBytes(id, "big.jpg", big, false), 413, "25 MiB + upload")
	})

	t.Run("corpus rejects", func(t *testing.T) {
		dir := corpusDir(t)
		var pending []string
		for _, row := range readManifest(t) {
			if row.Expected != "reject" {
				continue
			}
			r := app.uploadFile(id, filepath.Join(dir, row.File), true)
			switch {
			case r.Status == http.StatusAccepted:
				pending = append(pending, row.File+" "+r.Header.Get("Location"))
			case r.Status >= 400 && r.Status < 500:
				expectProblem(t, r, r.Status, row.File)
			default:
				t.Errorf("%s: status %d %s", row.File, r.Status, r.Body)
			}
		}
		for _, p := range pending {
			file, location, _ := strings.Cut(p, " ")
			img := app.waitImage(location, 2*time.Minute)
			if img["status"] != "failed" {
				t.Errorf("%s was accepted and ended %v, want failed", file, img["status"])
				continue
			}
			// An absent key reads as nil, never as "": take the strings out.
			e, _ := img["error"].(map[string]any)
			code, _ := e["code"].(string)
			detail, _ := e["detail"].(string)
			if code == "" || detail == "" {
				t.Errorf("%s failed without a code and detail: %v", file, img["error"])
			}
			t.Logf("%s: failed in processing: %s", file, code)
		}
		if r := app.do("GET", "/healthz", nil); r.Status != http.StatusOK {
			t.Fatalf("healthz after the rejects: %d", r.Status)
		}
		if r := app.do("GET", "/products/"+id, nil); r.Status != http.StatusOK {
			t.Fatalf("product after the rejects: %d", r.Status)
		}
	})
}

// oversized declares a body of size bytes and sends only its start, as a
// client streaming a huge body would: the server must answer from the
// headers, without reading (or buffering) the rest.
func oversized(t *testing.T, app *testApp, path, contentType string, size int) response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(app.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", path, contentType, size); err != nil {
		t.Fatal(err)
	}
	_, _ = conn.Write(bytes.Repeat([]byte("a"), 4096)) // the server may answer and close before it is sent
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: body}
}
