#include "cdf.h"

#include <math.h>
#include <stdlib.h>

/* Below this exponent a term is < 1.3e-14 of the top one: it could never lift
 * a frequency above the floor, and skipping exp() for it keeps the CDF fast. */
#define NC_EXP_CUTOFF (-32.0)

double nc_exp(double x) {
    /* Cody-Waite reduction x = k*ln2 + r, |r| <= ln2/2 (fdlibm's split of ln2,
     * whose high part has trailing zero bits so k*LN2_HI is exact), then a
     * degree-12 Taylor polynomial in Horner form and an exact power-of-two scale. */
    static const double LOG2E = 1.44269504088896338700e+00;
    static const double LN2_HI = 6.93147180369123816490e-01;
    static const double LN2_LO = 1.90821492927058770002e-10;
    static const double C[13] = {
        1.0,
        1.0,
        1.0 / 2,
        1.0 / 6,
        1.0 / 24,
        1.0 / 120,
        1.0 / 720,
        1.0 / 5040,
        1.0 / 40320,
        1.0 / 362880,
        1.0 / 3628800,
        1.0 / 39916800,
        1.0 / 479001600,
    };
    if (!(x > -745.0)) return 0.0; /* also catches NaN */
    if (x > 0.0) x = 0.0;
    double k = floor(x * LOG2E + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    double p = C[12];
    for (int i = 11; i >= 0; i--) p = p * r + C[i];
    return ldexp(p, (int)k);
}

double nc_log(double x) {
    /* x = m * 2^e with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m - 1) / (m + 1),
     * |s| <= 0.172, whose odd series to s^23 is exact to double precision. */
    static const double LN2_HI = 6.93147180369123816490e-01;
    static const double LN2_LO = 1.90821492927058770002e-10;
    if (!(x > 0.0)) return -INFINITY; /* also NaN */
    if (x == INFINITY) return INFINITY;
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e--;
    }
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double series = 1.0 / 23;
    for (int k = 21; k >= 1; k -= 2) series = series * s2 + 1.0 / k;
    return (double)e * LN2_HI + ((double)e * LN2_LO + 2.0 * s * series);
}

static int is_finite(float v) { return v == v && v != INFINITY && v != -INFINITY; }

int nc_cdf_from_logits(const float *logits, uint32_t n_logits, uint32_t n_extra, double inv_temp,
                       uint32_t *cdf, int64_t prob_of, double *prob_out) {
    uint64_t nsym64 = (uint64_t)n_logits + n_extra;
    if (!cdf || (n_logits > 0 && !logits) || nsym64 == 0 || nsym64 > NC_MAX_SYMBOLS) return NC_ERR_ARG;
    if (!(inv_temp > 0.0) || inv_temp == INFINITY) return NC_ERR_ARG;
    uint32_t nsym = (uint32_t)nsym64;

    /* Pass 1: the top score, first occurrence. */
    uint32_t top = 0;
    int any_finite = 0;
    float max = 0.0f;
    for (uint32_t i = 0; i < n_logits; i++) {
        if (!is_finite(logits[i])) continue;
        if (!any_finite || logits[i] > max) {
            max = logits[i];
            top = i;
            any_finite = 1;
        }
    }

    double *weight = NULL;
    double sum = 0.0;
    if (any_finite) {
        weight = malloc(sizeof *weight * n_logits);
        if (!weight) return NC_ERR_NOMEM;
        /* Pass 2: unnormalised weights, summed in index order. */
        for (uint32_t i = 0; i < n_logits; i++) {
            double w = 0.0;
            if (is_finite(logits[i])) {
                double a = ((double)logits[i] - (double)max) * inv_temp;
                if (a >= NC_EXP_CUTOFF) w = nc_exp(a);
            }
            weight[i] = w;
            sum += w;
        }
    }

    /* Pass 3: floor quantisation, each symbol at least 1. */
    const uint32_t spare = NC_CDF_TOTAL - nsym;
    uint64_t total = 0;
    uint32_t top_freq_index = top;
    double scale = any_finite ? (double)spare / sum : 0.0;
    cdf[0] = 0;
    for (uint32_t i = 0; i < nsym; i++) {
        uint32_t f = 1 + (any_finite ? (i < n_logits ? (uint32_t)(weight[i] * scale) : 0) : spare / nsym);
        cdf[i + 1] = f; /* frequencies first; made cumulative below */
        total += f;
    }
    if (!any_finite) top_freq_index = 0; /* uniform: remainder to symbol 0 */

    if (prob_out && prob_of >= 0) {
        *prob_out = (prob_of < n_logits && any_finite) ? weight[prob_of] / sum
                    : (!any_finite && prob_of < nsym) ? 1.0 / nsym
                                                      : 0.0;
    }
    free(weight);

    /* Rounding can only leave a deficit in exact arithmetic; guard the other
     * direction too, taking any excess from the top symbol (the largest). */
    uint32_t *top_f = &cdf[top_freq_index + 1];
    if (total <= NC_CDF_TOTAL) {
        *top_f += (uint32_t)(NC_CDF_TOTAL - total);
    } else {
        uint64_t excess = total - NC_CDF_TOTAL;
        if (*top_f <= excess) return NC_ERR_ARG;
        *top_f -= (uint32_t)excess;
    }
    for (uint32_t i = 0; i < nsym; i++) cdf[i + 1] += cdf[i];
    return cdf[nsym] == NC_CDF_TOTAL ? NC_OK : NC_ERR_ARG;
}

int nc_encode_logits(nc_encoder *enc, const float *logits, uint32_t n_logits, uint32_t n_extra,
                     double inv_temp, uint32_t *cdf, uint32_t sym, uint32_t *freq_out, double *prob_out) {
    if ((uint64_t)sym >= (uint64_t)n_logits + n_extra) return NC_ERR_ARG;
    int st = nc_cdf_from_logits(logits, n_logits, n_extra, inv_temp, cdf, sym, prob_out);
    if (st != NC_OK) return st;
    if (freq_out) *freq_out = cdf[sym + 1] - cdf[sym];
    return nc_encoder_encode(enc, cdf, n_logits + n_extra, sym);
}

int nc_decode_logits(nc_decoder *dec, const float *logits, uint32_t n_logits, uint32_t n_extra,
                     double inv_temp, uint32_t *cdf, uint32_t *sym_out, uint32_t *freq_out) {
    int st = nc_cdf_from_logits(logits, n_logits, n_extra, inv_temp, cdf, -1, NULL);
    if (st != NC_OK) return st;
    st = nc_decoder_decode(dec, cdf, n_logits + n_extra, sym_out);
    if (st == NC_OK && freq_out) *freq_out = cdf[*sym_out + 1] - cdf[*sym_out];
    return st;
}
