package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitrine-dev/vitrine/actors"
	"github.com/vitrine-dev/vitrine/catalog"
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

// Process runs the recipe; with opts.Early, the slow formats after it.
func (e *engine) Process(ctx context.Context, data []byte, opts actors.ProcessOptions) (actors.Processed, error) {
	mopts := media.Options{Focus: opts.Focus, CoverOnly: opts.CoverOnly}
	observed := 0
	if opts.Early != nil {
		mopts.Early = func(r media.Result) error {
			e.metrics.observe(r.Outputs)
			observed = len(r.Outputs)
			res := e.processed(r)
			res.Pending = e.pending(r.Outputs)
			return opts.Early(res)
		}
	}
	r, err := e.rt.ProcessImageWith(ctx, data, e.recipe, mopts)
	if err != nil {
		return actors.Processed{}, err
	}
	if observed == 0 {
		e.metrics.observe(r.Outputs)
	} else {
		var late []media.Output
		for _, o := range r.Outputs {
			if v := e.variant(o.Name); v != nil && v.Deferred(media.Encoding{Format: o.Format}) {
				late = append(late, o)
			}
		}
		e.metrics.observe(late)
	}
	return e.processed(r), nil
}

// processed is the worker's view of a result.
func (e *engine) processed(r media.Result) actors.Processed {
	res := actors.Processed{RecipeVersion: e.recipe.Version, Placeholder: r.Placeholder, DominantColor: r.DominantColor,
		Animated: r.Animated, Renditions: make([]actors.Rendition, len(r.Outputs))}
	for i, o := range r.Outputs {
		res.Renditions[i] = actors.Rendition{Name: o.Name, Fit: string(o.Fit), Format: o.Format.Name(), ContentType: o.ContentType, Width: o.Width, Height: o.Height, Data: o.Data}
	}
	return res
}

// pending lists the deferred files of the variants made so far (outputs
// of ProcessImageWith's Early), sized as the variant's other files.
func (e *engine) pending(early []media.Output) []actors.Rendition {
	var out []actors.Rendition
	for _, v := range e.recipe.Variants {
		i := slices.IndexFunc(early, func(o media.Output) bool { return o.Name == v.Name })
		if i < 0 {
			continue
		}
		for _, enc := range v.Formats {
			if v.Deferred(enc) {
				o := early[i]
				out = append(out, actors.Rendition{Name: v.Name, Fit: string(o.Fit), Format: enc.Format.Name(),
					ContentType: enc.Format.ContentType(), Width: o.Width, Height: o.Height})
			}
		}
	}
	return out
}

// variant is the recipe's variant of that name (nil when none).
func (e *engine) variant(name string) *media.Variant {
	for i := range e.recipe.Variants {
		if e.recipe.Variants[i].Name == name {
			return &e.recipe.Variants[i]
		}
	}
	return nil
}

// Collector is the engine's metrics.
func (e *engine) Collector() prometheus.Collector { return e.metrics }

// Shutdown stops libvips.
func (e *engine) Shutdown() { e.rt.Shutdown() }

// Render makes one file on demand from an original: r's width (the
// image's own aspect ratio, or a cover crop of r's ratio around focus),
// in r's format at the quality the recipe gives that format (the default
// recipe's when the recipe has none), by the same pipeline as the recipe's
// variants: strict decoding, sRGB, no metadata, never enlarged.
func (e *engine) Render(ctx context.Context, data []byte, r catalog.Render, focus *catalog.FocalPoint) (actors.Rendition, error) {
	f, err := media.ParseFormat(r.Format)
	if err != nil || !slices.Contains(catalog.RenderFormats, r.Format) {
		return actors.Rendition{}, catalog.Errorf(catalog.KindInvalid, "invalid_format", "format %q is not made on demand", r.Format)
	}
	v := media.Variant{Name: "od", Width: r.Width, Height: media.MaxVariantSide, Fit: media.FitInside,
		Formats: []media.Encoding{{Format: f, Quality: e.quality(f)}}}
	if r.Cropped() {
		v.Height, v.Fit = max(1, min(media.MaxVariantSide, (r.Width*r.AspectY+r.AspectX/2)/r.AspectX)), media.FitCover
	}
	res, err := e.rt.ProcessImageWith(ctx, data, media.Recipe{Version: e.recipe.Version, Variants: []media.Variant{v}},
		media.Options{Focus: focus, NoPlaceholder: true})
	if err != nil {
		return actors.Rendition{}, err
	}
	if len(res.Outputs) != 1 {
		return actors.Rendition{}, fmt.Errorf("render: %d outputs, not 1", len(res.Outputs))
	}
	o := res.Outputs[0]
	e.metrics.observe(res.Outputs)
	return actors.Rendition{Name: "od", Fit: string(o.Fit), Format: o.Format.Name(), ContentType: o.ContentType, Width: o.Width, Height: o.Height, Data: o.Data}, nil
}

// quality is the recipe's quality for format f: that of its first
// variant with f, else the default recipe's.
func (e *engine) quality(f media.Format) int {
	for _, r := range []media.Recipe{e.recipe, media.DefaultRecipe()} {
		for _, v := range r.Variants {
			for _, enc := range v.Formats {
				if enc.Format == f {
					return enc.Quality
				}
			}
		}
	}
	return 80
}
