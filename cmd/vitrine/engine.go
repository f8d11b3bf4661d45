package main

import (
	"context"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/media"
	"github.com/vitrine-dev/vitrine/media/vips"
)

// engine adapts the libvips runtime to what actors need: a probe for
// uploads and a processor for jobs.
type engine struct {
	rt      *vips.Runtime
	limits  media.Limits
	recipe  media.Recipe
	metrics *engineMetrics
}

// loadRecipe reads the recipe file, or returns the built-in recipe.
func loadRecipe(path string) (media.Recipe, error) {
	if path == "" {
		return media.DefaultRecipe(), nil
	}
	data, err := os.ReadFile(path) // #nosec G304 -- VITRINE_RECIPE_FILE, set by the operator
	if err != nil {
		return media.Recipe{}, fmt.Errorf("VITRINE_RECIPE_FILE: %w", err)
	}
	r, err := media.ParseRecipe(data)
	if err != nil {
		return media.Recipe{}, fmt.Errorf("VITRINE_RECIPE_FILE %s: %w", path, err)
	}
	return r, nil
}

// startEngine starts libvips once for the process.
func startEngine(cfg Config) (*engine, error) {
	recipe, err := loadRecipe(cfg.RecipeFile)
	if err != nil {
		return nil, err
	}
	limits := media.Limits{MaxPixels: int64(cfg.MaxPixels), MaxFrames: cfg.MaxFrames}
	rt, err := vips.Start(vips.Config{Concurrency: 1, Limits: limits})
	if err != nil {
		return nil, fmt.Errorf("start libvips: %w", err)
	}
	e := &engine{rt: rt, limits: limits, recipe: recipe}
	e.metrics = newEngineMetrics(func() vipsStats {
		st := rt.Stats()
		return vipsStats{memory: float64(st.Memory), highwater: float64(st.MemoryHighwater), cacheMaxMemory: float64(st.CacheMaxMemory),
			allocations: float64(st.Allocations), files: float64(st.Files), cacheSize: float64(st.CacheSize)}
	})
	return e, nil
}

// Probe reads the header within the limits. Width and height are those
// the image is displayed at, its EXIF orientation applied.
func (e *engine) Probe(data []byte) (actors.Header, error) {
	h, err := e.rt.Probe(data, e.limits)
	if err != nil {
		return actors.Header{}, err
	}
	w, ht := h.DisplaySize()
	return actors.Header{ContentType: h.Format.ContentType(), Width: w, Height: ht, Frames: h.Frames}, nil
}

// Process runs the recipe.
func (e *engine) Process(ctx context.Context, data []byte, opts actors.ProcessOptions) (actors.Processed, error) {
	r, err := e.rt.ProcessImageWith(ctx, data, e.recipe, media.Options{Focus: opts.Focus, CoverOnly: opts.CoverOnly})
	if err != nil {
		return actors.Processed{}, err
	}
	e.metrics.observe(r.Outputs)
	res := actors.Processed{RecipeVersion: e.recipe.Version, Placeholder: r.Placeholder, DominantColor: r.DominantColor,
		Animated: r.Animated, Renditions: make([]actors.Rendition, len(r.Outputs))}
	for i, o := range r.Outputs {
		res.Renditions[i] = actors.Rendition{Name: o.Name, Fit: string(o.Fit), Format: o.Format.Name(), ContentType: o.ContentType, Width: o.Width, Height: o.Height, Data: o.Data}
	}
	return res, nil
}

// Collector is the engine's metrics.
func (e *engine) Collector() prometheus.Collector { return e.metrics }

// Shutdown stops libvips.
func (e *engine) Shutdown() { e.rt.Shutdown() }
