/* The ensemble's state, and what each arithmetic does of a step: private to
 * mix.c (what the arithmetics share, written once) and the arithmetics'
 * own files, mix_double.c (NC_ARITH_EXACT_DOUBLE) and mix_float32.c
 * (NC_ARITH_FLOAT32). Nothing outside them includes this. */
#ifndef NC_MIX_STATE_H
#define NC_MIX_STATE_H

#include <stdint.h>

#include "mix.h"
#include "sparse.h"

/* Match lengths grouped for choosing weight sets and APM tables:
 * none, < 8, < 16, < 32, >= 32 tokens. */
#define MATCH_GROUPS 5
/* APM: 33 interpolation points over stretch(p) in [-12, 12]. */
#define APM_POINTS 33
#define APM_RANGE 12.0
/* Output = (p + 3 * apm(p)) / 4: the table refines, the input anchors it while it learns. */
#define APM_KEEP 0.25
/* Skipped tokens: base(t) = (count(t) + FALLBACK_PSEUDO) / (tokens + FALLBACK_PSEUDO * n_vocab). */
#define FALLBACK_PSEUDO 0.125
/* The APM is not applied when the candidate's probability is this close to 1. */
#define APM_MIN_REST 1e-12

#define MAX_EXPERTS (1 + NC_NGRAM_MAX_ORDER + 1)

typedef struct nc_ens_arithmetic nc_ens_arithmetic;

struct nc_ens {
    nc_ens_params p;
    uint32_t n_vocab, n_extra;
    double inv_temp;
    const nc_ens_arithmetic *arith;
    /* Lanes sharing this ensemble: each keeps its n-gram context, its match and
     * its skip decision; everything learned is shared. */
    uint32_t n_lanes, lane;
    nc_ngram_context *lane_ctx; /* the current lane's slot holds nothing */
    uint8_t *lane_skip;
    uint32_t *lane_prev; /* each lane's previous token; the current lane's is prev */
    uint32_t prev;
    nc_ngram *ng;
    nc_match *mt;
    nc_bias *bias;
    uint32_t n_orders;         /* n-gram experts */
    uint32_t n_experts;        /* base + n-gram orders + match */
    nc_sparse ex[MAX_EXPERTS]; /* ex[0] unused (the base) */
    uint32_t *cdf;             /* the coder's table: cumulative (exact double) or frequencies at cdf + 1 (float32) */
    /* Exact double: the base distribution and the mixture, token by token. */
    double *base, *mix;
    /* Float32: unnormalised base weights, base = wt / wt_sum, and the context
     * heads (a head per previous token modulo n_heads), this step's head and
     * the bias with its head's values added. */
    float *wt;
    float wt_sum;
    uint32_t n_heads;
    nc_bias **heads;
    uint32_t head;
    float *bsum;
    /* mixer */
    uint32_t n_sets;
    double *v;
    /* APM */
    uint32_t n_apm;
    double *apm;
    /* fallback base for skipped tokens */
    uint32_t *uni;
    uint64_t tokens;
    int skip_next;
    int experts_ready; /* ex[] already predicted from the current state (by ngram_agrees) */
    /* this step */
    const float *logits; /* NULL when skipping */
    int skipping;
    uint32_t set, apm_ctx, apm_j, cand;
    double w[MAX_EXPERTS], sum, apm_frac, apm_out, cand_in, scale_other;
    double base_mass; /* the mixer weight of the base, all escapes included */
    int apm_used;
};

/* What an arithmetic does of a step; mix.c calls these in this order:
 * base, total, (mass, for the APM), quantise, freq and code, base_prob and
 * learn_bias. Each computes exactly what the format says (docs/format.md,
 * "The ensemble" and "The ensemble in arithmetic 2"): its own rounding. */
struct nc_ens_arithmetic {
    /* Its buffers (the context heads included), and the ensemble's when it is
     * made; 0 when one cannot be allocated (nc_ens_free frees what was). */
    int (*alloc)(nc_ens *e);
    /* The base of this step (the language model's, corrected by the bias head,
     * or the fallback counts while skipping) and its first top token. */
    int (*base)(nc_ens *e, uint32_t *top);
    /* The mixture's total mass, the weights e->w and the base's e->base_mass given. */
    double (*total)(nc_ens *e);
    /* The mixture's (unnormalised) mass of token t < n_vocab. */
    double (*mass)(const nc_ens *e, uint32_t t);
    /* The coder's table from the mixture, the APM's candidate and the scale
     * e->scale_other; the remainder goes to `top` (float32) or the first largest. */
    int (*quantise)(nc_ens *e, uint32_t top);
    /* The coded frequency of sym, and coding it under the table. */
    uint32_t (*freq)(const nc_ens *e, uint32_t sym);
    int (*encode)(nc_ens *e, nc_encoder *enc, uint32_t sym);
    int (*decode)(nc_ens *e, nc_decoder *dec, uint32_t *sym_out);
    /* The base's probability of token t, as the mixer learns from it. */
    double (*base_prob)(const nc_ens *e, uint32_t t);
    /* The bias head (and its context head) learn token t from the model's logits. */
    void (*learn_bias)(nc_ens *e, uint32_t t);
};

extern const nc_ens_arithmetic nc_ens_exact_double;
extern const nc_ens_arithmetic nc_ens_float32;

/* The fallback base's first top token: the most counted, 0 before any. */
uint32_t nc_ens_fallback_top(const nc_ens *e);

#endif
