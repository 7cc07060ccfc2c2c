/* Compiled kernels of DownsizeNet's CPU inference (downsizenet_hub.resizing.native).
 *
 * anchor_conv3x3_relu: relu(conv3x3(features, weight, bias, padding=1)) evaluated at the pixels
 * (rows[i], cols[j]) only, read straight from the channels-last feature map: no grid of 3x3
 * blocks is gathered first. Rows and columns outside the map read as zeros (the convolution's
 * zero padding).
 *
 * mix_taps: each output pixel's convex mix of its taps, read straight from the images.
 *
 * Plain C99 with OpenMP (the runtime PyTorch already loaded) or POSIX threads, compiled on the
 * user's machine at first use; the Python side checks both against PyTorch's operators before
 * using them and keeps the eager path where they cannot be built.
 */
#include <pthread.h>
#include <stdint.h>

typedef struct {
    const float *features; /* (batch, height, width, channels) */
    const float *weight;   /* (3, 3, channels, out_channels) */
    const float *bias;     /* (out_channels) or NULL */
    const int64_t *rows;   /* (out_h) anchor rows, in features' rows */
    const int64_t *cols;   /* (out_w) anchor columns */
    /* anchor (i, j) of image b: out[b * out_batch_stride + (i * out_w + j) * out_channels] */
    float *out;
    int64_t height, width, channels, out_channels, out_h, out_w, out_batch_stride;
    int64_t first, last; /* this job's (b * out_h + i) output rows */
} Job;

/* Eight floats, one AVX register or two NEON ones (GCC and Clang vector extensions). */
typedef float v8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p) {
    v8 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

/* One anchor, ``co`` a multiple of 8 (the only widths the kernel takes); inlined with ``co`` a
 * constant, so that the accumulators stay in registers: for each input pixel and channel, one
 * broadcast and co / 8 multiply-adds. */
static inline __attribute__((always_inline)) void point8(const Job *job, const float *image,
                                                         int64_t r, int64_t c, float *dst,
                                                         const int64_t co) {
    v8 acc[8];
    for (int64_t q = 0; q < co / 8; q++)
        acc[q] = job->bias ? load8(job->bias + 8 * q) : (v8){0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t ci = job->channels;
    for (int64_t dy = -1; dy <= 1; dy++) {
        const int64_t rr = r + dy;
        if (rr < 0 || rr >= job->height) continue;
        for (int64_t dx = -1; dx <= 1; dx++) {
            const int64_t cc = c + dx;
            if (cc < 0 || cc >= job->width) continue;
            const float *px = image + (rr * job->width + cc) * ci;
            const float *w = job->weight + ((dy + 1) * 3 + (dx + 1)) * ci * co;
            for (int64_t m = 0; m < ci; m++) {
                const float x = px[m];
                const v8 xv = {x, x, x, x, x, x, x, x};
                for (int64_t q = 0; q < co / 8; q++) acc[q] += xv * load8(w + m * co + 8 * q);
            }
        }
    }
    for (int64_t q = 0; q < co / 8; q++) __builtin_memcpy(dst + 8 * q, &acc[q], sizeof acc[q]);
    for (int64_t k = 0; k < co; k++) dst[k] = dst[k] < 0.0f ? 0.0f : dst[k];
}

/* Four anchors of one row, none of them on the left or right border, ``co`` 8 or 16: each
 * weight vector loaded once serves four anchors, and the 4 * co / 8 accumulators are
 * independent chains of multiply-adds, enough to keep the vector units busy. */
static inline __attribute__((always_inline)) void point8x4(const Job *job, const float *image,
                                                           int64_t r, const int64_t *c,
                                                           float *dst, const int64_t co) {
    v8 acc[4][2];
    for (int64_t p = 0; p < 4; p++)
        for (int64_t q = 0; q < co / 8; q++)
            acc[p][q] = job->bias ? load8(job->bias + 8 * q) : (v8){0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t ci = job->channels;
    for (int64_t dy = -1; dy <= 1; dy++) {
        const int64_t rr = r + dy;
        if (rr < 0 || rr >= job->height) continue;
        const float *line = image + rr * job->width * ci;
        for (int64_t dx = -1; dx <= 1; dx++) {
            const float *w = job->weight + ((dy + 1) * 3 + (dx + 1)) * ci * co;
            const float *px0 = line + (c[0] + dx) * ci, *px1 = line + (c[1] + dx) * ci;
            const float *px2 = line + (c[2] + dx) * ci, *px3 = line + (c[3] + dx) * ci;
            for (int64_t m = 0; m < ci; m++) {
                const float x0 = px0[m], x1 = px1[m], x2 = px2[m], x3 = px3[m];
                const v8 b0 = {x0, x0, x0, x0, x0, x0, x0, x0};
                const v8 b1 = {x1, x1, x1, x1, x1, x1, x1, x1};
                const v8 b2 = {x2, x2, x2, x2, x2, x2, x2, x2};
                const v8 b3 = {x3, x3, x3, x3, x3, x3, x3, x3};
                for (int64_t q = 0; q < co / 8; q++) {
                    const v8 wv = load8(w + m * co + 8 * q);
                    acc[0][q] += b0 * wv;
                    acc[1][q] += b1 * wv;
                    acc[2][q] += b2 * wv;
                    acc[3][q] += b3 * wv;
                }
            }
        }
    }
    for (int64_t p = 0; p < 4; p++) {
        float *out = dst + p * co;
        for (int64_t q = 0; q < co / 8; q++) __builtin_memcpy(out + 8 * q, &acc[p][q], sizeof(v8));
        for (int64_t k = 0; k < co; k++) out[k] = out[k] < 0.0f ? 0.0f : out[k];
    }
}

#define RUN_ROWS(POINT, CO)                                                                 \
    for (int64_t row = job->first; row < job->last; row++) {                              \
        const int64_t b = row / job->out_h, i = row % job->out_h;                         \
        const float *image = job->features + b * job->height * job->width * job->channels; \
        float *dst = job->out + b * job->out_batch_stride + i * job->out_w * (CO);         \
        for (int64_t j = 0; j < job->out_w; j++)                                           \
            POINT(job, image, job->rows[i], job->cols[j], dst + j * (CO), (CO));           \
    }

/* A row of anchors, four at a time where all four are inside the borders. */
#define RUN_ROWS_BY_FOUR(CO)                                                                \
    for (int64_t row = job->first; row < job->last; row++) {                              \
        const int64_t b = row / job->out_h, i = row % job->out_h;                         \
        const float *image = job->features + b * job->height * job->width * job->channels; \
        float *dst = job->out + b * job->out_batch_stride + i * job->out_w * (CO);         \
        const int64_t r = job->rows[i];                                                    \
        int64_t j = 0;                                                                     \
        while (j < job->out_w) {                                                           \
            const int64_t *c = job->cols + j;                                              \
            if (j + 4 <= job->out_w && c[0] >= 1 && c[0] <= job->width - 2 && c[1] >= 1 &&  \
                c[1] <= job->width - 2 && c[2] >= 1 && c[2] <= job->width - 2 && c[3] >= 1 && \
                c[3] <= job->width - 2) {                                                  \
                point8x4(job, image, r, c, dst + j * (CO), (CO));                          \
                j += 4;                                                                    \
            } else {                                                                       \
                point8(job, image, r, c[0], dst + j * (CO), (CO));                         \
                j += 1;                                                                    \
            }                                                                              \
        }                                                                                  \
    }

static void *run(void *arg) {
    const Job *job = (const Job *)arg;
    switch (job->out_channels) {
        case 8: RUN_ROWS_BY_FOUR(8) break;
        case 16: RUN_ROWS_BY_FOUR(16) break;
        case 32: RUN_ROWS(point8, 32) break;
        case 64: RUN_ROWS(point8, 64) break;
        default: RUN_ROWS(point8, job->out_channels) break; /* 24, 40, 48, 56 */
    }
    return NULL;
}

/* Runs fn on each of ``threads`` jobs (an array of ``size``-byte structs), in parallel. */
static void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int64_t threads) {
    char *first = (char *)jobs;
#ifdef _OPENMP
    /* Built with -fopenmp: PyTorch's own OpenMP threads (the runtime is loaded already and
     * shared), which are awake right after the texture convolutions. */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t t = 0; t < threads; t++) fn(first + t * size);
#else
    pthread_t handles[64];
    int started[64] = {0};
    for (int64_t t = 1; t < threads; t++)
        started[t] = pthread_create(&handles[t], NULL, fn, first + t * size) == 0;
    fn(first);
    for (int64_t t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(handles[t], NULL);
        else
            fn(first + t * size); /* no thread to spare: this one does it */
    }
#endif
}

static int64_t clamp_threads(int64_t threads, int64_t work) {
    if (threads > 64) threads = 64;
    if (threads > work) threads = work;
    return threads < 1 ? 1 : threads;
}

/* Returns 0, or -1 if the arguments are out of range (nothing written). */
int anchor_conv3x3_relu(const float *features, const float *weight, const float *bias,
                        const int64_t *rows, const int64_t *cols, float *out, int64_t batch,
                        int64_t height, int64_t width, int64_t channels, int64_t out_channels,
                        int64_t out_h, int64_t out_w, int64_t out_batch_stride, int64_t threads) {
    if (out_channels < 8 || out_channels > 64 || out_channels % 8 || channels < 1 || batch < 0 ||
        out_h < 0 || out_w < 0)
        return -1;
    for (int64_t i = 0; i < out_h; i++)
        if (rows[i] < 0 || rows[i] >= height) return -1;
    for (int64_t j = 0; j < out_w; j++)
        if (cols[j] < 0 || cols[j] >= width) return -1;
    const int64_t total = batch * out_h;
    threads = clamp_threads(threads, total);
    Job jobs[64];
    for (int64_t t = 0; t < threads; t++) {
        Job job = {features, weight, bias, rows, cols, out, height, width, channels,
                   out_channels, out_h, out_w, out_batch_stride, total * t / threads,
                   total * (t + 1) / threads};
        jobs[t] = job;
    }
    run_jobs(run, jobs, sizeof(Job), threads);
    return 0;
}

/* The convex mix: out[b, p, c] = sum over k of coefficients[b, p, k] * images[b, c, taps[p, k]],
 * reading the images through strides (``taps`` are flat pixel indices y * W + x, so the image's
 * rows must be contiguous in pixels: NCHW and NHWC both are). */
typedef struct {
    const float *images;
    const int64_t *taps;        /* (pixels, k) */
    const float *coefficients;  /* (batch, pixels, k) */
    float *out;                 /* (batch, pixels, channels) */
    int64_t pixels, k, channels, batch_stride, channel_stride, pixel_stride;
    int64_t first, last;        /* this job's (b * pixels + p) */
} MixJob;

static void *run_mix(void *arg) {
    const MixJob *job = (const MixJob *)arg;
    const int64_t k = job->k;
    for (int64_t row = job->first; row < job->last; row++) {
        const int64_t b = row / job->pixels, p = row % job->pixels;
        const float *image = job->images + b * job->batch_stride;
        const int64_t *tap = job->taps + p * k;
        const float *w = job->coefficients + row * k;
        float *dst = job->out + row * job->channels;
        for (int64_t c = 0; c < job->channels; c++) {
            const float *plane = image + c * job->channel_stride;
            float acc = 0.0f;
            for (int64_t q = 0; q < k; q++) acc += w[q] * plane[tap[q] * job->pixel_stride];
            dst[c] = acc;
        }
    }
    return NULL;
}

/* Returns 0, or -1 if a tap falls outside the image (nothing written). */
int mix_taps(const float *images, const int64_t *taps, const float *coefficients, float *out,
             int64_t batch, int64_t channels, int64_t pixels, int64_t k, int64_t in_pixels,
             int64_t batch_stride, int64_t channel_stride, int64_t pixel_stride,
             int64_t threads) {
    if (batch < 0 || channels < 0 || pixels < 0 || k < 1) return -1;
    for (int64_t i = 0; i < pixels * k; i++)
        if (taps[i] < 0 || taps[i] >= in_pixels) return -1;
    const int64_t total = batch * pixels;
    threads = clamp_threads(threads, total);
    MixJob jobs[64];
    for (int64_t t = 0; t < threads; t++) {
        MixJob job = {images, taps, coefficients, out, pixels, k, channels, batch_stride,
                      channel_stride, pixel_stride, total * t / threads,
                      total * (t + 1) / threads};
        jobs[t] = job;
    }
    run_jobs(run_mix, jobs, sizeof(MixJob), threads);
    return 0;
}
