#include "vec.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "cdf.h"

/* 1.5 * 2^23: adding and subtracting it rounds a float of magnitude < 2^22 to
 * the nearest integer (ties to even), exactly, without a call to rintf that
 * a baseline x86-64 build could not vectorise. */
#define ROUNDER 12582912.0f


static inline float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* exp(x) for x in [NC_F32_CUTOFF, 0], in float, from + - * and an exact power of two. */
static inline float exp_f32(float x) {
    /* Cody-Waite: x = k ln2 + r, |r| <= ln2 / 2, with ln2 split so that k * LN2_HI
     * is exact for |k| < 2^11; then a degree-6 Taylor polynomial (relative error
     * < 2e-7 on that interval) and an exact scale by 2^k, k in [-46, 0]. */
    const float LOG2E = 1.44269502162933349609f;
    const float LN2_HI = 0.693145751953125f;
    const float LN2_LO = 1.42860682030941723212e-06f;
    float k = (x * LOG2E + ROUNDER) - ROUNDER;
    float r = (x - k * LN2_HI) - k * LN2_LO;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * bits_to_float((uint32_t)((int32_t)k + 127) << 23);
}

static float tree(float *part) {
    for (int width = NC_F32_PARTS / 2; width >= 1; width /= 2)
        for (int j = 0; j < width; j++) part[j] += part[j + width];
    return part[0];
}

NC_VECTORISE float nc_f32_sum(const float *x, uint32_t n) {
    float part[NC_F32_PARTS] = {0};
    size_t i = 0;
    for (; i + NC_F32_PARTS <= n; i += NC_F32_PARTS)
        for (size_t j = 0; j < NC_F32_PARTS; j++) part[j] += x[i + j];
    for (; i < n; i++) part[i % NC_F32_PARTS] += x[i];
    return tree(part);
}

NC_VECTORISE float nc_f32_weights(const float *restrict logits, uint32_t n, float scale, const float *restrict bias, float *restrict w,
                    uint32_t *top) {
    /* Pass 1: scores into w, -inf for the non-finite ones (x - x is NaN exactly
     * for infinities and NaN), and their maximum, which is exact in any order. */
    float part[NC_F32_PARTS];
    for (size_t j = 0; j < NC_F32_PARTS; j++) part[j] = -INFINITY;
    size_t i = 0;
    for (; i + NC_F32_PARTS <= n; i += NC_F32_PARTS)
        for (size_t j = 0; j < NC_F32_PARTS; j++) {
            float x = logits[i + j];
            float s = x * scale + (bias ? bias[i + j] : 0.0f);
            s = (x - x == 0.0f) ? s : -INFINITY;
            w[i + j] = s;
            part[j] = s > part[j] ? s : part[j];
        }
    for (; i < n; i++) {
        float x = logits[i];
        float s = x * scale + (bias ? bias[i] : 0.0f);
        s = (x - x == 0.0f) ? s : -INFINITY;
        w[i] = s;
        part[i % NC_F32_PARTS] = s > part[i % NC_F32_PARTS] ? s : part[i % NC_F32_PARTS];
    }
    float max = -INFINITY;
    for (size_t j = 0; j < NC_F32_PARTS; j++) max = part[j] > max ? part[j] : max;
    if (top) *top = 0;
    if (max == -INFINITY) {
        memset(w, 0, (size_t)n * sizeof *w);
        return 0.0f;
    }
    if (top)
        for (uint32_t t = 0; t < n; t++)
            if (w[t] == max) {
                *top = t;
                break;
            }
    /* Pass 2: weights and their sum. The exponent is clamped before exp() so that
     * it never sees -inf; the clamped ones are then dropped. */
    for (size_t j = 0; j < NC_F32_PARTS; j++) part[j] = 0.0f;
    for (i = 0; i + NC_F32_PARTS <= n; i += NC_F32_PARTS)
        for (size_t j = 0; j < NC_F32_PARTS; j++) {
            float a = w[i + j] - max;
            float e = exp_f32(a >= NC_F32_CUTOFF ? a : NC_F32_CUTOFF);
            e = a >= NC_F32_CUTOFF ? e : 0.0f;
            w[i + j] = e;
            part[j] += e;
        }
    for (; i < n; i++) {
        float a = w[i] - max;
        float e = exp_f32(a >= NC_F32_CUTOFF ? a : NC_F32_CUTOFF);
        e = a >= NC_F32_CUTOFF ? e : 0.0f;
        w[i] = e;
        part[i % NC_F32_PARTS] += e;
    }
    return tree(part);
}

NC_VECTORISE uint64_t nc_f32_quantise(const float *restrict w, uint32_t n, float k, uint32_t *restrict freq) {
    /* w * k <= 2^24 (w <= 1, k <= the spare mass): the conversion is exact truncation. */
    uint32_t part[NC_F32_PARTS] = {0};
    size_t i = 0;
    for (; i + NC_F32_PARTS <= n; i += NC_F32_PARTS)
        for (size_t j = 0; j < NC_F32_PARTS; j++) {
            uint32_t v = 1u + (uint32_t)(int32_t)(w[i + j] * k);
            freq[i + j] = v;
            part[j] += v;
        }
    uint64_t total = 0;
    for (; i < n; i++) {
        freq[i] = 1u + (uint32_t)(int32_t)(w[i] * k);
        total += freq[i];
    }
    for (size_t j = 0; j < NC_F32_PARTS; j++) total += part[j];
    return total;
}

NC_VECTORISE uint64_t nc_f32_prefix(const uint32_t *freq, uint32_t n) {
    /* Integer sums are exact in any order; the partial sums only let it vectorise.
     * Each part sums at most n / 16 frequencies of a total of 2^24: no overflow. */
    uint32_t part[NC_F32_PARTS] = {0};
    size_t i = 0;
    for (; i + NC_F32_PARTS <= n; i += NC_F32_PARTS)
        for (size_t j = 0; j < NC_F32_PARTS; j++) part[j] += freq[i + j];
    uint64_t total = 0;
    for (; i < n; i++) total += freq[i];
    for (size_t j = 0; j < NC_F32_PARTS; j++) total += part[j];
    return total;
}

int nc_f32_encode(nc_encoder *enc, const uint32_t *freq, uint32_t nsym, uint32_t sym) {
    if (!freq || sym >= nsym) return NC_ERR_ARG;
    uint64_t low = nc_f32_prefix(freq, sym);
    if (low + freq[sym] > NC_CDF_TOTAL) return NC_ERR_ARG;
    return nc_encoder_encode_range(enc, (uint32_t)low, freq[sym]);
}

/* Symbols summed at once while looking for the decoded one. */
#define DECODE_BLOCK 256

int nc_f32_decode(nc_decoder *dec, const uint32_t *freq, uint32_t nsym, uint32_t *sym_out) {
    if (!freq || !sym_out || nsym == 0) return NC_ERR_ARG;
    uint32_t target;
    int st = nc_decoder_target(dec, &target);
    if (st != NC_OK) return st;
    uint64_t low = 0;
    uint32_t i = 0;
    while (i + DECODE_BLOCK < nsym) {
        uint64_t block = nc_f32_prefix(freq + i, DECODE_BLOCK);
        if (low + block > target) break;
        low += block;
        i += DECODE_BLOCK;
    }
    for (; i < nsym; i++) {
        if (low + freq[i] > target) break;
        low += freq[i];
    }
    if (i >= nsym) return NC_ERR_ARG; /* the frequencies sum to less than the total */
    *sym_out = i;
    return nc_decoder_consume(dec, (uint32_t)low, freq[i]);
}

int nc_f32_freqs_from_logits(const float *logits, uint32_t n_logits, uint32_t n_extra, float inv_temp,
                             float *w, uint32_t *freq, int64_t prob_of, double *prob_out) {
    uint64_t nsym64 = (uint64_t)n_logits + n_extra;
    if (!freq || (n_logits > 0 && (!logits || !w)) || nsym64 == 0 || nsym64 > NC_MAX_SYMBOLS)
        return NC_ERR_ARG;
    if (!(inv_temp > 0.0f) || inv_temp == INFINITY) return NC_ERR_ARG;
    const uint32_t nsym = (uint32_t)nsym64;
    const uint32_t spare = NC_CDF_TOTAL - nsym;
    uint32_t top = 0;
    float sum = n_logits ? nc_f32_weights(logits, n_logits, inv_temp, NULL, w, &top) : 0.0f;
    uint64_t total;
    if (sum > 0.0f) {
        total = nc_f32_quantise(w, n_logits, (float)((double)spare / (double)sum), freq);
        for (uint32_t i = n_logits; i < nsym; i++) freq[i] = 1;
        total += n_extra;
    } else { /* nothing finite: uniform, the remainder to symbol 0 */
        top = 0;
        for (uint32_t i = 0; i < nsym; i++) freq[i] = 1 + spare / nsym;
        total = (uint64_t)nsym * (1 + spare / nsym);
    }
    if (prob_out && prob_of >= 0)
        *prob_out = sum > 0.0f ? (prob_of < n_logits ? (double)w[prob_of] / (double)sum : 0.0)
                               : (prob_of < nsym ? 1.0 / nsym : 0.0);
    return nc_f32_settle(freq, total, top);
}

int nc_f32_settle(uint32_t *freq, uint64_t total, uint32_t top) {
    if (total <= NC_CDF_TOTAL) {
        freq[top] += (uint32_t)(NC_CDF_TOTAL - total);
    } else {
        uint64_t excess = total - NC_CDF_TOTAL;
        if (freq[top] <= excess) return NC_ERR_ARG;
        freq[top] -= (uint32_t)excess;
    }
    return NC_OK;
}
