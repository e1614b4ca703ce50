/* Float scores -> integer CDF with total 2^24, every symbol >= 1.
 *
 * This is the only place where floating point decides a coded probability, so
 * it is written to give bit-identical results on any IEEE-754 machine:
 * doubles only, a fixed evaluation order, our own exp() built from + - * and
 * exact scaling (no libm exp, whose last bit varies between libm versions),
 * and compiled with -ffp-contract=off (no fused multiply-add) and no fast-math.
 */
#ifndef NC_CDF_H
#define NC_CDF_H

#include <stdint.h>

#include "coder.h"

/* Largest alphabet accepted: half the total, so floors never take all the mass. */
#define NC_MAX_SYMBOLS (NC_CDF_TOTAL / 2)

/* exp(x), deterministic, for x <= 0 (x > 0 is treated as 0); 0 for x <= -745 or NaN. */
double nc_exp(double x);
/* log(x), deterministic in the same way; -inf for x <= 0 or NaN. */
double nc_log(double x);

/* Build the CDF of n_logits scored symbols followed by n_extra symbols of
 * frequency 1 (escapes the model never predicts). Symbol i of the first group
 * gets probability softmax(logits * inv_temp)[i], quantised as
 * 1 + floor(p_i * (2^24 - nsym)); the rounding remainder goes to the first
 * symbol of highest score. Non-finite scores count as probability 0; if no
 * score is finite, all symbols get equal mass.
 * cdf must have room for n_logits + n_extra + 1 entries.
 * If prob_of >= 0 and prob_out != NULL, *prob_out receives the unquantised
 * probability of symbol prob_of (0 for extra symbols), for statistics. */
int nc_cdf_from_logits(const float *logits, uint32_t n_logits, uint32_t n_extra, double inv_temp,
                       uint32_t *cdf, int64_t prob_of, double *prob_out);

/* One crossing per token: build the CDF into `cdf` and code one symbol with it.
 * *freq_out receives the coded symbol's frequency, *prob_out its unquantised
 * probability (both may be NULL). */
int nc_encode_logits(nc_encoder *enc, const float *logits, uint32_t n_logits, uint32_t n_extra,
                     double inv_temp, uint32_t *cdf, uint32_t sym, uint32_t *freq_out, double *prob_out);
int nc_decode_logits(nc_decoder *dec, const float *logits, uint32_t n_logits, uint32_t n_extra,
                     double inv_temp, uint32_t *cdf, uint32_t *sym_out, uint32_t *freq_out);

#endif
