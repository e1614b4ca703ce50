/* The ensemble's own work in NC_ARITH_EXACT_DOUBLE (arithmetic 1): every
 * float operation on doubles, with our own exp (cdf.h); the base and the
 * mixture are kept token by token, and the coder's table is cumulative.
 *
 * Frozen: this is the decoder of every file made with it (each file without a
 * CODING parameter), so it must compute what it always has, bit for bit
 * (tests/test_golden.py). Improve the ensemble in mix.c or mix_float32.c. */
#include <stdlib.h>

#include "bias.h"
#include "mix_state.h"

static int alloc(nc_ens *e) {
    e->base = malloc(e->n_vocab * sizeof *e->base);
    e->mix = malloc(e->n_vocab * sizeof *e->mix);
    return e->base && e->mix;
}

static int base(nc_ens *e, uint32_t *top) {
    const uint32_t V = e->n_vocab;
    if (!e->skipping) return nc_softmax(e->logits, V, e->inv_temp, e->bias, e->base, top);
    double den = (double)e->tokens + FALLBACK_PSEUDO * (double)V;
    for (uint32_t i = 0; i < V; i++) e->base[i] = ((double)e->uni[i] + FALLBACK_PSEUDO) / den;
    *top = nc_ens_fallback_top(e);
    return NC_OK;
}

/* Mixture: A * base, plus the named candidates, summed in that order. */
static double mixture_total(nc_ens *e) {
    double sum = 0.0;
    for (uint32_t i = 0; i < e->n_vocab; i++) {
        e->mix[i] = e->base_mass * e->base[i];
        sum += e->mix[i];
    }
    for (uint32_t i = 1; i < e->n_experts; i++)
        for (uint32_t k = 0; k < e->ex[i].n; k++) {
            double add = e->w[i] * e->ex[i].p[k];
            e->mix[e->ex[i].tok[k]] += add;
            sum += add;
        }
    return sum;
}

static double mass(const nc_ens *e, uint32_t t) { return e->mix[t]; }

/* Quantise: 1 + floor(q * spare) each, the remainder to the first largest. */
static int quantise(nc_ens *e, uint32_t top) {
    (void)top;
    const uint32_t V = e->n_vocab;
    const uint32_t spare = NC_CDF_TOTAL - V - e->n_extra;
    const uint32_t nsym = V + e->n_extra;
    uint32_t *cdf = e->cdf;
    uint64_t total = 0;
    uint32_t big = 0, big_f = 0;
    cdf[0] = 0;
    const int apm = e->apm_used;
    const uint32_t cand = e->cand;
    for (uint32_t i = 0; i < V; i++) {
        /* The candidate's own scale would overflow when the rest is tiny: it has its own value. */
        double q = (apm && i == cand) ? e->cand_in * (double)spare : e->mix[i] * e->scale_other;
        uint32_t f = 1 + (uint32_t)q;
        cdf[i + 1] = f;
        total += f;
        if (f > big_f) {
            big_f = f;
            big = i;
        }
    }
    for (uint32_t i = V; i < nsym; i++) {
        cdf[i + 1] = 1;
        total++;
    }
    if (total <= NC_CDF_TOTAL) {
        cdf[big + 1] += (uint32_t)(NC_CDF_TOTAL - total);
    } else {
        uint64_t excess = total - NC_CDF_TOTAL;
        if (cdf[big + 1] <= excess) return NC_ERR_ARG;
        cdf[big + 1] -= (uint32_t)excess;
    }
    for (uint32_t i = 0; i < nsym; i++) cdf[i + 1] += cdf[i];
    return cdf[nsym] == NC_CDF_TOTAL ? NC_OK : NC_ERR_ARG;
}

static uint32_t freq(const nc_ens *e, uint32_t sym) { return e->cdf[sym + 1] - e->cdf[sym]; }

static int encode(nc_ens *e, nc_encoder *enc, uint32_t sym) {
    return nc_encoder_encode(enc, e->cdf, e->n_vocab + e->n_extra, sym);
}

static int decode(nc_ens *e, nc_decoder *dec, uint32_t *sym_out) {
    return nc_decoder_decode(dec, e->cdf, e->n_vocab + e->n_extra, sym_out);
}

static double base_prob(const nc_ens *e, uint32_t t) { return e->base[t]; }

static void learn_bias(nc_ens *e, uint32_t t) { nc_bias_update(e->bias, e->base, e->logits, e->inv_temp, t); }

const nc_ens_arithmetic nc_ens_exact_double = {
    .alloc = alloc,
    .base = base,
    .total = mixture_total,
    .mass = mass,
    .quantise = quantise,
    .freq = freq,
    .encode = encode,
    .decode = decode,
    .base_prob = base_prob,
    .learn_bias = learn_bias,
};
