package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

const importUsage = `Flags:
  --url URL        base URL of the running vitrine (default http://localhost:8080)
  --key KEY        API key with the write scope (env VITRINE_API_KEY)
  --format F       ndjson or csv (default: from the file's extension, .csv or else ndjson)

The file is sent with a progress bar, then the import's rows with another as
the server applies them. Ctrl-C while the rows are applied leaves the import
running in vitrine and prints its URL. Exits 1 when some rows failed (their
errors are printed, the first ten, and where to read them all).
`

const exportUsage = `Flags:
  --url URL        base URL of the running vitrine (default http://localhost:8080)
  --key KEY        API key with the read scope (env VITRINE_API_KEY); a key bound to an owner exports its products
  --format F       ndjson (default) or csv
  --out FILE       where to write (default: standard output)
  --user-id N, --q TEXT, --min-price P, --max-price P
                   the list's filters

An exported file imports back with vitrine import (changing nothing).
`

// apiImport is what vitrine import reads of an import.
type apiImport struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Rows   struct {
		Total, Applied, Failed, Pending int
	} `json:"rows"`
	Errors []struct {
		Line   int    `json:"line"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

// importFile sends a catalog file to a running vitrine and follows its
// import to the end.
func importFile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vitrine import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://localhost:8080", "base URL of a running vitrine")
	key := fs.String("key", getenv("VITRINE_API_KEY"), "API key with the write scope (env VITRINE_API_KEY)")
	format := fs.String("format", "", "ndjson or csv (default: from the extension)")
	path, err := parseWithOneArg(fs, args, "FILE")
	if err != nil {
		return err
	}
	if *format == "" {
		*format = "ndjson"
		if strings.EqualFold(filepath.Ext(path), ".csv") {
			*format = "csv"
		}
	}
	contentType := map[string]string{"ndjson": "application/x-ndjson", "csv": "text/csv"}[*format]
	if contentType == "" {
		return fmt.Errorf("--format must be ndjson or csv, got %q", *format)
	}
	f, err := os.Open(path) // #nosec G304 G703 -- the file the operator names on vitrine import's command line
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // opened read-only: closing it loses nothing
	info, err := f.Stat()
	if err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*base, "/"), key: *key, http: &http.Client{}}
	bar := progressbar.NewOptions64(info.Size(), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("send"),
		progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
	body := progressbar.NewReader(f, bar)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/imports", &body)
	if err != nil {
		return err
	}
	req.ContentLength = info.Size()
	req.Header.Set("Content-Type", contentType)
	res, err := c.do(req)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted before the file was sent whole: nothing was imported")
		}
		return fmt.Errorf("POST /imports: %w", err)
	}
	defer res.Body.Close()
	_ = bar.Finish()
	if res.StatusCode != http.StatusAccepted {
		return problemError("POST /imports", res)
	}
	var imp apiImport
	if err := json.NewDecoder(res.Body).Decode(&imp); err != nil {
		return fmt.Errorf("POST /imports: %w", err)
	}
	location := c.base + "/imports/" + imp.ID
	fmt.Fprintf(stderr, "import accepted: %s (%d rows)\n", location, imp.Rows.Total)

	started := time.Now()
	rows := progressbar.NewOptions(imp.Rows.Total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("apply"),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	for imp.Status != "completed" {
		select {
		case <-ctx.Done():
			_ = rows.Exit()
			fmt.Fprintf(stderr, "\ninterrupted: the import goes on in vitrine; follow it at %s\n", location)
			fmt.Fprintln(stdout, location)
			return nil
		case <-time.After(500 * time.Millisecond):
		}
		if err := c.get(ctx, "/imports/"+imp.ID, &imp); err != nil && ctx.Err() == nil {
			return err
		}
		_ = rows.Set(imp.Rows.Applied + imp.Rows.Failed)
	}
	_ = rows.Finish()
	fmt.Fprintf(stdout, "import %s: %d rows, %d applied, %d failed, in %s\n", imp.ID, imp.Rows.Total, imp.Rows.Applied, imp.Rows.Failed,
		time.Since(started).Round(time.Millisecond))
	if imp.Rows.Failed == 0 {
		return nil
	}
	for _, e := range imp.Errors[:min(10, len(imp.Errors))] {
		fmt.Fprintf(stdout, "  line %d: %s: %s\n", e.Line, e.Code, e.Detail)
	}
	fmt.Fprintf(stdout, "every error: %s/errors\n", location)
	return fmt.Errorf("%d rows failed", imp.Rows.Failed)
}

// exportProducts writes a running vitrine's products to a file or
// standard output.
func exportProducts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vitrine export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://localhost:8080", "base URL of a running vitrine")
	key := fs.String("key", getenv("VITRINE_API_KEY"), "API key with the read scope (env VITRINE_API_KEY)")
	format := fs.String("format", "ndjson", "ndjson or csv")
	out := fs.String("out", "", "file to write (default: standard output)")
	q := url.Values{}
	for _, name := range []string{"user-id", "q", "min-price", "max-price"} {
		fs.Func(name, "filter: as GET /products's "+strings.ReplaceAll(name, "-", "_"), func(v string) error {
			q.Set(strings.ReplaceAll(name, "-", "_"), v)
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export takes no arguments, got %q", fs.Args())
	}
	accept := map[string]string{"ndjson": "application/x-ndjson", "csv": "text/csv"}[*format]
	if accept == "" {
		return fmt.Errorf("--format must be ndjson or csv, got %q", *format)
	}
	c := &apiClient{base: strings.TrimRight(*base, "/"), key: *key, http: &http.Client{}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/products/export?"+q.Encode(), http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	res, err := c.do(req)
	if err != nil {
		return fmt.Errorf("GET /products/export: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return problemError("GET /products/export", res)
	}
	w := stdout
	var file *os.File // --out, closed (and its error checked) once written
	if *out != "" {
		if file, err = os.Create(*out); err != nil {
			return err
		}
		w = file
	}
	bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("export"),
		progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
	bw := bufio.NewWriter(w)
	lines := &lineCounter{w: bw}
	n, err := io.Copy(io.MultiWriter(lines, bar), res.Body)
	if err == nil {
		err = bw.Flush()
	}
	if file != nil {
		if closeErr := file.Close(); err == nil {
			err = closeErr
		}
	}
	_ = bar.Finish()
	if err != nil {
		return fmt.Errorf("export cut short after %d bytes: %w", n, err)
	}
	what := strconv.Itoa(lines.n) + " products"
	if *format == "csv" {
		what = "a header and the products' records"
	}
	fmt.Fprintf(stderr, "exported %s, %d bytes\n", what, n)
	return nil
}

// lineCounter counts the newlines written through it.
type lineCounter struct {
	w io.Writer
	n int
}

func (l *lineCounter) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			l.n++
		}
	}
	return l.w.Write(p)
}

// parseWithOneArg parses flags that may come before or after one
// positional argument, and returns it.
func parseWithOneArg(fs *flag.FlagSet, args []string, name string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("give one %s, got %d arguments", name, len(pos))
	}
	return pos[0], nil
}

// problemError is the error of a response that is not the one hoped for:
// its problem's detail when it is one.
func problemError(what string, res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var p struct {
		Detail string `json:"detail"`
		Code   string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		return fmt.Errorf("%s: %s: %s (%s)", what, res.Status, p.Detail, p.Code)
	}
	return fmt.Errorf("%s: %s %s", what, res.Status, strings.TrimSpace(string(body)))
}
