/* The ensemble's own work in NC_ARITH_FLOAT32 (arithmetic 2): the dense work
 * over the vocabulary in float (vec.h), the same bits at any vector width.
 *
 * The base stays unnormalised (wt, summing to wt_sum), so the mixture of a
 * token is a * wt[t] / wt_sum plus its named candidates' mass, and only the
 * few named tokens are computed one by one: every other token's frequency is
 * 1 + floor(wt[t] * k) for one k, in one vectorisable pass. The coder's table
 * holds frequencies (at cdf + 1), not cumulative ones. The context heads
 * exist only here. */
#include <stdlib.h>

#include "bias.h"
#include "mix_state.h"
#include "vec.h"

static int alloc(nc_ens *e) {
    const uint32_t V = e->n_vocab;
    int ok = (e->wt = malloc(V * sizeof *e->wt)) != NULL;
    if ((e->p.flags & NC_ENS_BIAS) && e->p.bias_contexts) {
        uint32_t fit = NC_BIAS_CONTEXT_ENTRIES / V;
        e->n_heads = e->p.bias_contexts < fit ? e->p.bias_contexts : fit ? fit : 1;
        e->heads = calloc(e->n_heads, sizeof *e->heads);
        e->bsum = malloc(V * sizeof *e->bsum);
        ok &= e->heads && e->bsum;
        for (uint32_t h = 0; ok && h < e->n_heads; h++)
            ok &= (e->heads[h] = nc_bias_new_f32(V, e->p.bias_context_lr, e->p.bias_limit)) != NULL;
    }
    return ok;
}

static int base(nc_ens *e, uint32_t *top) {
    const uint32_t V = e->n_vocab;
    if (e->skipping) {
        for (uint32_t i = 0; i < V; i++) e->wt[i] = (float)e->uni[i] + (float)FALLBACK_PSEUDO;
        *top = nc_ens_fallback_top(e);
        e->wt_sum = nc_f32_sum(e->wt, V);
        return NC_OK;
    }
    float scale = (float)e->inv_temp * (e->bias ? nc_bias_scale_f32(e->bias) : 1.0f);
    const float *bias = e->bias ? nc_bias_values_f32(e->bias) : NULL;
    if (e->n_heads) {
        e->head = e->prev % e->n_heads;
        const float *c = nc_bias_values_f32(e->heads[e->head]);
        for (uint32_t i = 0; i < V; i++) e->bsum[i] = bias[i] + c[i];
        bias = e->bsum;
    }
    e->wt_sum = nc_f32_weights(e->logits, V, scale, bias, e->wt, top);
    if (!(e->wt_sum > 0.0f)) { /* nothing finite: uniform */
        for (uint32_t i = 0; i < V; i++) e->wt[i] = 1.0f;
        e->wt_sum = nc_f32_sum(e->wt, V);
        *top = 0;
    }
    return NC_OK;
}

/* The mixture's total: the base sums to 1, the candidates add theirs. */
static double mixture_total(nc_ens *e) {
    double sum = e->base_mass;
    for (uint32_t i = 1; i < e->n_experts; i++)
        for (uint32_t k = 0; k < e->ex[i].n; k++) sum += e->w[i] * e->ex[i].p[k];
    return sum;
}

static double mass(const nc_ens *e, uint32_t t) {
    double m = e->base_mass * ((double)e->wt[t] / (double)e->wt_sum);
    for (uint32_t i = 1; i < e->n_experts; i++) m += e->w[i] * nc_sparse_get(&e->ex[i], t);
    return m;
}

/* Quantise: every token in one pass, then the named ones (and the APM's)
 * exactly; the remainder to the top token, or a named one of more. */
static int quantise(nc_ens *e, uint32_t top) {
    const uint32_t V = e->n_vocab;
    const uint32_t spare = NC_CDF_TOTAL - V - e->n_extra;
    const uint32_t nsym = V + e->n_extra;
    uint32_t *freq = e->cdf + 1;
    float k = (float)(e->base_mass / (double)e->wt_sum * e->scale_other);
    uint64_t total = nc_f32_quantise(e->wt, V, k, freq);
    for (uint32_t i = V; i < nsym; i++) freq[i] = 1;
    total += e->n_extra;
    uint32_t big = top, done[MAX_EXPERTS * NC_SPARSE_MAX + 1], n_done = 0;
    for (uint32_t i = 0; i < e->n_experts; i++) {
        uint32_t n = i ? e->ex[i].n : (e->apm_used ? 1 : 0);
        for (uint32_t c = 0; c < n; c++) {
            uint32_t t = i ? e->ex[i].tok[c] : e->cand;
            int seen = 0;
            for (uint32_t d = 0; d < n_done && !seen; d++) seen = done[d] == t;
            if (seen) continue;
            done[n_done++] = t;
            double q = (e->apm_used && t == e->cand) ? e->cand_in * (double)spare : mass(e, t) * e->scale_other;
            uint32_t f = 1 + (uint32_t)q;
            total = total - freq[t] + f;
            freq[t] = f;
            if (f > freq[big] || (f == freq[big] && t < big)) big = t;
        }
    }
    return nc_f32_settle(freq, total, big);
}

static uint32_t freq(const nc_ens *e, uint32_t sym) { return e->cdf[sym + 1]; }

static int encode(nc_ens *e, nc_encoder *enc, uint32_t sym) {
    return nc_f32_encode(enc, e->cdf + 1, e->n_vocab + e->n_extra, sym);
}

static int decode(nc_ens *e, nc_decoder *dec, uint32_t *sym_out) {
    return nc_f32_decode(dec, e->cdf + 1, e->n_vocab + e->n_extra, sym_out);
}

static double base_prob(const nc_ens *e, uint32_t t) {
    double inv_sum = 1.0 / (double)e->wt_sum;
    return (double)e->wt[t] * inv_sum;
}

static void learn_bias(nc_ens *e, uint32_t t) {
    float inv_sum = (float)(1.0 / (double)e->wt_sum);
    nc_bias_update_f32(e->bias, e->wt, inv_sum, e->logits, (float)e->inv_temp, t);
    if (e->n_heads) nc_bias_update_f32(e->heads[e->head], e->wt, inv_sum, e->logits, (float)e->inv_temp, t);
}

const nc_ens_arithmetic nc_ens_float32 = {
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
