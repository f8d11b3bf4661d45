// capi.c: see capi.h and capi.go.
#include "capi.h"
#include "_cgo_export.h"

const char *vt_allowed_loaders[] = {
    "VipsForeignLoadJpegBuffer", "VipsForeignLoadPngBuffer",
    "VipsForeignLoadWebpBuffer", "VipsForeignLoadNsgifBuffer",
    "VipsForeignLoadHeifBuffer", "VipsForeignLoadTiffBuffer",
    NULL,
};

// vt_block_loaders blocks the loaders libvips marks untrusted, then every
// loader, then unblocks the allowed ones. It returns -1 if an allowed class
// is missing from this libvips build.
int vt_block_loaders(void) {
  vips_block_untrusted_set(TRUE);
  vips_operation_block_set("VipsForeignLoad", TRUE);
  for (int i = 0; vt_allowed_loaders[i]; i++) {
    if (!g_type_from_name(vt_allowed_loaders[i])) {
      vips_error("vitrine", "loader class %s is missing",
                 vt_allowed_loaders[i]);
      return -1;
    }
    vips_operation_block_set(vt_allowed_loaders[i], FALSE);
  }
  return 0;
}

// vt_is_blocked reports whether the operation with this nickname (e.g.
// "svgload_buffer") is blocked; -1 if there is no such operation.
int vt_is_blocked(const char *nickname) {
  GType type = vips_type_find("VipsOperation", nickname);
  if (!type) {
    return -1;
  }
  VipsOperationClass *class = VIPS_OPERATION_CLASS(g_type_class_ref(type));
  int blocked = (class->flags & VIPS_OPERATION_BLOCKED) != 0;
  g_type_class_unref(class);
  return blocked;
}

VipsBlob *vt_blob_copy(const void *data, size_t len) {
  return vips_blob_copy(data, len);
}

// vt_blob_freed runs when libvips drops the last reference to a wrapped
// blob: Go unpins the bytes.
static int vt_blob_freed(void *data, void *area) {
  (void)area;
  vtBlobFreed(data);
  return 0;
}

VipsBlob *vt_blob_wrap(const void *data, size_t len) {
  return vips_blob_new((VipsCallbackFn)vt_blob_freed, data, len);
}

void vt_blob_unref(VipsBlob *blob) { vips_area_unref(VIPS_AREA(blob)); }

// vt_load runs the named buffer loader on the first page, in sequential
// access, decoding strictly at fail_on, and shrinking on load where asked
// (jpeg_shrink > 1 for JPEG, 0 < webp_scale < 1 for WebP). Only the header is
// read now: libvips decodes pixels when they are first asked for.
int vt_load(VipsBlob *blob, const char *loader, VipsFailOn fail_on,
            int jpeg_shrink, double webp_scale, VipsImage **out) {
  if (jpeg_shrink > 1) {
    return vips_call(loader, blob, out, "access", VIPS_ACCESS_SEQUENTIAL,
                     "fail_on", fail_on, "shrink", jpeg_shrink, NULL);
  }
  if (webp_scale > 0 && webp_scale < 1) {
    return vips_call(loader, blob, out, "access", VIPS_ACCESS_SEQUENTIAL,
                     "fail_on", fail_on, "scale", webp_scale, NULL);
  }
  return vips_call(loader, blob, out, "access", VIPS_ACCESS_SEQUENTIAL,
                   "fail_on", fail_on, NULL);
}

// vt_thumbnail_image shrinks the image to fit inside width x height, never
// enlarging; with crop, it shrinks it to cover the box instead and crops the
// overflow with the attention strategy. If rotate is set, it first turns
// the image upright by its EXIF orientation and removes the orientation tag.
int vt_thumbnail_image(VipsImage *in, int width, int height, int rotate,
                       int crop, VipsImage **out) {
  return vips_thumbnail_image(
      in, out, width, "height", height, "size", VIPS_SIZE_DOWN, "no_rotate",
      !rotate, "crop",
      crop ? VIPS_INTERESTING_ATTENTION : VIPS_INTERESTING_NONE, NULL);
}

// vt_focus_crop cuts the region width x height at left, top out of the
// image and scales it to exactly out_width x out_height (the region has
// their shape, to a pixel).
int vt_focus_crop(VipsImage *in, int left, int top, int width, int height,
                  int out_width, int out_height, VipsImage **out) {
  VipsImage *region;
  if (vips_extract_area(in, &region, left, top, width, height, NULL))
    return -1;
  int r = vips_thumbnail_image(region, out, out_width, "height", out_height,
                               "size", VIPS_SIZE_FORCE, "no_rotate", TRUE,
                               NULL);
  g_object_unref(region);
  return r;
}

VipsImage *vt_new_memory(void) { return vips_image_new_memory(); }

int vt_write(VipsImage *in, VipsImage *memory) {
  return vips_image_write(in, memory);
}

void vt_kill(VipsImage *image) { vips_image_set_kill(image, TRUE); }

// vt_to_srgb8 converts to 8-bit sRGB (plus alpha, if any). An embedded ICC
// profile is honoured, with libvips' default relative colorimetric intent;
// CMYK without one goes through libvips' built-in CMYK profile. An embedded
// profile that cannot be used (broken, or not matching the image) is
// ignored, as browsers do, and libvips' unmanaged conversion is made.
int vt_to_srgb8(VipsImage *in, VipsImage **out) {
  VipsImage *managed = NULL;
  if (vips_image_get_typeof(in, VIPS_META_ICC_NAME) ||
      in->Type == VIPS_INTERPRETATION_CMYK) {
    const char *fallback =
        in->Type == VIPS_INTERPRETATION_CMYK ? "cmyk" : "srgb";
    if (vips_icc_transform(in, &managed, "srgb", "embedded", TRUE,
                           "input_profile", fallback, "depth", 8, NULL)) {
      vips_error_clear();
      managed = NULL;
    }
  }
  VipsImage *t = managed ? managed : in;
  VipsImage *rgb = NULL;
  int r = vips_colourspace(t, &rgb, VIPS_INTERPRETATION_sRGB, NULL);
  if (managed) {
    g_object_unref(managed);
  }
  if (r) {
    return -1;
  }
  if (rgb->BandFmt == VIPS_FORMAT_UCHAR) {
    *out = rgb;
    return 0;
  }
  r = vips_cast_uchar(rgb, out, NULL);
  g_object_unref(rgb);
  return r;
}

// vt_flatten_white composites the image over white, dropping its alpha.
int vt_flatten_white(VipsImage *in, VipsImage **out) {
  VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
  int r = vips_flatten(in, out, "background", white, NULL);
  vips_area_unref(VIPS_AREA(white));
  return r;
}

// vt_strip returns a copy of the image without any metadata: every field
// that is not part of the image structure (EXIF, XMP, IPTC, ICC profile,
// orientation, comments, page layout, loader notes, …) is removed, so that
// no saver can copy it, whatever its strip option does. (Debian's libvips
// 8.14 WebP saver still writes a fresh EXIF block of its own; see
// media.StripWebPMetadata.)
int vt_strip(VipsImage *in, VipsImage **out) {
  if (vips_copy(in, out, NULL)) {
    return -1;
  }
  gchar **fields = vips_image_get_fields(*out);
  for (int i = 0; fields[i]; i++) {
    vips_image_remove(*out, fields[i]);  // no-op for structural fields
  }
  g_strfreev(fields);
  return 0;
}

int vt_save_jpeg(VipsImage *in, int quality, void **buf, size_t *len) {
  return vips_jpegsave_buffer(in, buf, len, "Q", quality, "strip", TRUE,
                              "optimize_coding", TRUE, "interlace", FALSE,
                              NULL);
}

int vt_save_webp(VipsImage *in, int quality, void **buf, size_t *len) {
  return vips_webpsave_buffer(in, buf, len, "Q", quality, "strip", TRUE,
                              NULL);
}

// vt_save_avif writes AV1 in HEIF, 8 bits a channel (the saver's default
// is 12), 4:2:0 chroma. libheif picks its AV1 encoder: libaom on Debian 12.
int vt_save_avif(VipsImage *in, int quality, int effort, void **buf,
                 size_t *len) {
  return vips_heifsave_buffer(in, buf, len, "Q", quality, "compression",
                              VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "bitdepth", 8,
                              "effort", effort, "strip", TRUE, NULL);
}

int vt_cast_uchar(VipsImage *in, VipsImage **out) {
  return vips_cast_uchar(in, out, NULL);
}

void *vt_pixels(VipsImage *in, size_t *len) {
  return vips_image_write_to_memory(in, len);
}

int vt_width(VipsImage *image) { return vips_image_get_width(image); }
int vt_height(VipsImage *image) { return vips_image_get_height(image); }
int vt_bands(VipsImage *image) { return vips_image_get_bands(image); }
int vt_n_pages(VipsImage *image) { return vips_image_get_n_pages(image); }
int vt_orientation(VipsImage *image) {
  return vips_image_get_orientation(image);
}
int vt_has_alpha(VipsImage *image) { return vips_image_hasalpha(image); }
char **vt_fields(VipsImage *image) { return vips_image_get_fields(image); }

void vt_unref(VipsImage *image) {
  if (image) {
    g_object_unref(image);
  }
}

// vt_error returns and clears libvips' error buffer; the caller frees the
// string with g_free. The buffer is process-wide, so under concurrency it
// may also hold another job's messages.
char *vt_error(void) { return vips_error_buffer_copy(); }

// vt_floor_thumbnail is the least libvips work for one box: thumbnail_buffer
// with its own shrink-on-load and default options (auto-rotation,
// lenient decoding), on the blob's bytes. See Runtime.Floor.
int vt_floor_thumbnail(VipsBlob *blob, int width, int height, int crop,
                       VipsImage **out) {
  size_t len;
  const void *data = vips_blob_get(blob, &len);
  return vips_thumbnail_buffer(
      (void *)data, len, out, width, "height", height, "size", VIPS_SIZE_DOWN,
      "crop", crop ? VIPS_INTERESTING_ATTENTION : VIPS_INTERESTING_NONE, NULL);
}

// vt_copy_memory renders the image into memory.
int vt_copy_memory(VipsImage *in, VipsImage **out) {
  *out = vips_image_copy_memory(in);
  return *out ? 0 : -1;
}

// vt_resize_jpeg scales the image by factor (Lanczos 3) and saves it as a
// plain baseline JPEG at quality Q without metadata: how the bench makes
// its large test photo.
int vt_resize_jpeg(VipsBlob *blob, double factor, int quality, void **buf,
                   size_t *len) {
  size_t n;
  const void *data = vips_blob_get(blob, &n);
  VipsImage *in = NULL, *big = NULL;
  if (!(in = vips_image_new_from_buffer(data, n, "", NULL))) {
    return -1;
  }
  int r = vips_resize(in, &big, factor, NULL);
  g_object_unref(in);
  if (r) {
    return -1;
  }
  r = vips_jpegsave_buffer(big, buf, len, "Q", quality, "strip", TRUE,
                           "interlace", FALSE, "optimize_coding", FALSE, NULL);
  g_object_unref(big);
  return r;
}

// vt_box_shrink averages blocks of hfactor x vfactor pixels (libvips'
// shrink, a box filter: each source pixel is read once).
int vt_box_shrink(VipsImage *in, int hfactor, int vfactor, VipsImage **out) {
  return vips_shrink(in, out, (double)hfactor, (double)vfactor, NULL);
}

void vt_stats(VtStats *s) {
  s->mem = vips_tracked_get_mem();
  s->mem_highwater = vips_tracked_get_mem_highwater();
  s->allocs = vips_tracked_get_allocs();
  s->files = vips_tracked_get_files();
  s->cache_size = vips_cache_get_size();
  s->cache_max = vips_cache_get_max();
  s->cache_max_mem = vips_cache_get_max_mem();
}
