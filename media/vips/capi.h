// capi.h: the libvips calls media/vips makes itself rather than through
// govips; capi.go says why.
#ifndef VITRINE_CAPI_H
#define VITRINE_CAPI_H

#include <stdlib.h>
#include <vips/vips.h>

#if VIPS_MAJOR_VERSION < 8 || (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION < 13)
#error "vitrine needs libvips 8.13 or later (vips_block_untrusted_set, fail_on)"
#endif

// Loader classes left unblocked: the buffer loaders of the accepted formats.
// NULL-terminated.
extern const char *vt_allowed_loaders[];

// Startup and policy.
int vt_block_loaders(void);
int vt_is_blocked(const char *nickname);

// Buffers. The blob owns a copy of the caller's bytes.
VipsBlob *vt_blob_copy(const void *data, size_t len);
// vt_blob_wrap makes a blob of the caller's bytes without copying them;
// vtBlobFreed (Go) is called with data when libvips frees the blob.
VipsBlob *vt_blob_wrap(const void *data, size_t len);
void vt_blob_unref(VipsBlob *blob);

// Loading.
int vt_load(VipsBlob *blob, const char *loader, VipsFailOn fail_on,
            int jpeg_shrink, double webp_scale, VipsImage **out);
int vt_thumbnail_image(VipsImage *in, int width, int height, int rotate,
                       int crop, VipsImage **out);
int vt_box_shrink(VipsImage *in, int hfactor, int vfactor, VipsImage **out);
int vt_focus_crop(VipsImage *in, int left, int top, int width, int height,
                  int out_width, int out_height, VipsImage **out);

// Rendering to memory in two steps, so that the caller holds the target and
// can kill the evaluation from another thread.
VipsImage *vt_new_memory(void);
int vt_write(VipsImage *in, VipsImage *memory);
void vt_kill(VipsImage *image);

// Conversions.
int vt_to_srgb8(VipsImage *in, VipsImage **out);
int vt_flatten_white(VipsImage *in, VipsImage **out);
int vt_cast_uchar(VipsImage *in, VipsImage **out);
int vt_strip(VipsImage *in, VipsImage **out);

// Saving. The caller frees *buf with g_free.
int vt_save_jpeg(VipsImage *in, int quality, void **buf, size_t *len);
int vt_save_webp(VipsImage *in, int quality, void **buf, size_t *len);
int vt_save_avif(VipsImage *in, int quality, int effort, void **buf,
                 size_t *len);

// Pixels: the image rendered as packed bytes; the caller frees the result
// with g_free. The image must be uchar.
void *vt_pixels(VipsImage *in, size_t *len);

// Header fields.
int vt_width(VipsImage *image);
int vt_height(VipsImage *image);
int vt_bands(VipsImage *image);
int vt_n_pages(VipsImage *image);
int vt_orientation(VipsImage *image);
int vt_has_alpha(VipsImage *image);
char **vt_fields(VipsImage *image);

void vt_unref(VipsImage *image);
char *vt_error(void);

// The bench's floor and test photo (floor.go).
int vt_floor_thumbnail(VipsBlob *blob, int width, int height, int crop,
                       VipsImage **out);
int vt_copy_memory(VipsImage *in, VipsImage **out);
int vt_resize_jpeg(VipsBlob *blob, double factor, int quality, void **buf,
                   size_t *len);

/* vt_stats fills libvips' memory and cache figures. */
typedef struct {
  size_t mem, mem_highwater;
  int allocs, files, cache_size, cache_max;
  size_t cache_max_mem;
} VtStats;
void vt_stats(VtStats *s);

#endif
