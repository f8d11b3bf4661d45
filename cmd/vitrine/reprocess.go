package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// reprocess asks a running vitrine to process again the images made by an
// older recipe version: through its HTTP API, so every change still goes
// through the product's actor.
func reprocess(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vitrine reprocess", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "http://localhost:8080", "base URL of a running vitrine")
	all := fs.Bool("all", false, "every product")
	product := fs.String("product", "", "one product's id")
	force := fs.Bool("force", false, "also images already made by the current recipe")
	key := fs.String("key", getenv("VITRINE_API_KEY"), "API key with the write scope (env VITRINE_API_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *all == (*product != "") {
		return fmt.Errorf("give exactly one of --all or --product ID")
	}
	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	recipe, err := loadRecipe(cfg.RecipeFile)
	if err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(*base, "/"), key: *key, http: &http.Client{Timeout: 30 * time.Second}}

	// Find the images to redo.
	type target struct{ product, image string }
	var targets []target
	var seen int
	collect := func(p apiProduct) {
		for _, img := range p.Images {
			seen++
			if (*force || img.RecipeVersion < recipe.Version) && (img.Status == "ready" || img.Status == "failed") {
				targets = append(targets, target{p.ID, img.ID})
			}
		}
	}
	if *product != "" {
		var p apiProduct
		if err := c.get(ctx, "/products/"+url.PathEscape(*product), &p); err != nil {
			return err
		}
		collect(p)
	} else {
		cursor := ""
		for {
			var page struct {
				Items      []apiProduct `json:"items"`
				NextCursor *string      `json:"next_cursor"`
			}
			if err := c.get(ctx, "/products?limit=100&cursor="+url.QueryEscape(cursor), &page); err != nil {
				return err
			}
			for _, p := range page.Items {
				collect(p)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
	}

	bar := progressbar.NewOptions(len(targets), progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("reprocess"),
		progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
	var queued, failed int
	for _, tg := range targets {
		if ctx.Err() != nil {
			break
		}
		if err := c.post(ctx, "/products/"+tg.product+"/images/"+tg.image+"/reprocess"); err != nil {
			failed++
			fmt.Fprintf(stderr, "\nimage %s of product %s: %v\n", tg.image, tg.product, err)
		} else {
			queued++
		}
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	fmt.Fprintf(stdout, "recipe version %d: %d images seen, %d queued for reprocessing, %d already current, %d errors\n",
		recipe.Version, seen, queued, seen-len(targets), failed)
	if failed > 0 {
		return fmt.Errorf("%d images could not be queued", failed)
	}
	return ctx.Err()
}

type apiProduct struct {
	ID     string `json:"id"`
	Images []struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		RecipeVersion int    `json:"recipe_version"`
	} `json:"images"`
}

type apiClient struct {
	base string
	key  string // sent as a bearer token when set
	http *http.Client
}

func (c *apiClient) do(req *http.Request) (*http.Response, error) {
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	return c.http.Do(req) // #nosec G704 -- the vitrine API the operator names with --url
}

// get reads the JSON of path into v.
func (c *apiClient) get(ctx context.Context, path string, v any) error {
	res, err := c.send(ctx, http.MethodGet, path, http.StatusOK)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return json.NewDecoder(res.Body).Decode(v)
}

// post posts nothing to path, which accepts it (202).
func (c *apiClient) post(ctx context.Context, path string) error {
	res, err := c.send(ctx, http.MethodPost, path, http.StatusAccepted)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	return nil
}

// send makes a request of no body to path and returns its response when
// its status is want; else an error with the status and the start of the
// body, the response closed.
func (c *apiClient) send(ctx context.Context, method, path string, want int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, http.NoBody)
	if err != nil {
		return nil, err
	}
	res, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode != want {
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("%s %s: %s %s", method, path, res.Status, body)
	}
	return res, nil
}
