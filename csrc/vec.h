/* Arithmetic 2, NC_ARITH_FLOAT32 (the nc_f32_ functions): the dense
 * per-token work (softmax, quantisation, the bias head's step) in float,
 * written so that a compiler may vectorise it at any width and still give
 * the same bits everywhere.
 *
 * Why it is deterministic:
 *  - every element is computed by the same sequence of IEEE-754 float
 *    operations (+ - * / sqrt, conversions), each correctly rounded, so a
 *    4-, 8- or 16-wide SIMD unit and a scalar one give the same result;
 *  - reductions use NC_F32_PARTS interleaved partial sums (element i goes to
 *    part i % NC_F32_PARTS) and then a fixed pairwise tree, so the order of
 *    additions never depends on how the loop is compiled;
 *  - integer sums and the maximum are exact whatever their order;
 *  - built with -ffp-contract=off and no fast-math: no fused multiply-add, no
 *    reassociation. Nothing depends on -march: a build with AVX2 or AVX-512
 *    only runs the same operations wider.
 * Why float and not double: twice the elements per vector and half the
 * memory traffic; a probability's last bits only move its frequency by a unit
 * now and then, which costs nothing measurable (docs/measurements.md).
 *
 * Files record the arithmetic they were coded with (docs/format.md, CODING);
 * arithmetic 1 (cdf.c, the double-precision path) still decodes older files. */
#ifndef NC_VEC_H
#define NC_VEC_H

#include <stdint.h>

#include "coder.h"

#define NC_F32_PARTS 16

/* The dense loops are built twice on x86-64 (ELF): for the baseline and for
 * AVX2, chosen when the library loads. Both run the same operations, so the
 * results are the same bits (tests/test_build_flags.py); AVX2 runs twice as
 * many at once. FMA is not enabled: products are never fused. */
#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(NC_NO_MULTIVERSION)
#define NC_VECTORISE __attribute__((target_clones("avx2", "default")))
#else
#define NC_VECTORISE
#endif
/* Below this exponent a weight is 0 (as in arithmetic 1). */
#define NC_F32_CUTOFF (-32.0f)

/* w[i] = exp(s[i] - max s), s[i] = logits[i] * scale + (bias ? bias[i] : 0), for the
 * finite logits; 0 for non-finite ones and below the cut-off. Returns the sum of
 * w (fixed order), 0 when no logit is finite; *top: the first index of the largest s. */
float nc_f32_weights(const float *logits, uint32_t n, float scale, const float *bias, float *w,
                    uint32_t *top);

/* Sum of n floats in the fixed order described above. */
float nc_f32_sum(const float *x, uint32_t n);

/* Frequencies freq[i] = 1 + (uint32)(w[i] * k); returns their exact sum. */
uint64_t nc_f32_quantise(const float *w, uint32_t n, float k, uint32_t *freq);

/* The exact sum of freq[0 .. n). */
uint64_t nc_f32_prefix(const uint32_t *freq, uint32_t n);

/* Make frequencies summing to `total` sum to NC_CDF_TOTAL: the difference goes
 * to (or comes from) symbol `top`. NC_ERR_ARG if that would empty it. */
int nc_f32_settle(uint32_t *freq, uint64_t total, uint32_t top);

/* Code a symbol under nsym frequencies summing to NC_CDF_TOTAL (no cumulative
 * table is built: the encoder sums the frequencies below the symbol, the
 * decoder sums blocks of them until it passes its target). */
int nc_f32_encode(nc_encoder *enc, const uint32_t *freq, uint32_t nsym, uint32_t sym);
int nc_f32_decode(nc_decoder *dec, const uint32_t *freq, uint32_t nsym, uint32_t *sym_out);

/* The frequencies of softmax(logits * inv_temp) followed by n_extra symbols of
 * frequency 1, as nc_cdf_from_logits but in arithmetic 2 and not cumulative:
 * 1 + floor(w[i] * k) with k = (2^24 - nsym) / sum(w) in float, the
 * remainder to the first highest score. w: scratch of n_logits floats.
 * prob_out (if prob_of >= 0): the unquantised probability of symbol prob_of. */
int nc_f32_freqs_from_logits(const float *logits, uint32_t n_logits, uint32_t n_extra, float inv_temp,
                             float *w, uint32_t *freq, int64_t prob_of, double *prob_out);

#endif
