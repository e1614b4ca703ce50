/* The ensemble's steps that both arithmetics share, written once: the lanes,
 * the experts, the weight sets, the APM, the learning and the skip decision.
 * Each arithmetic's own work (the base, the mixture's mass, the coder's table)
 * is in its file: mix_double.c and mix_float32.c (mix_state.h). */
#include "mix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cdf.h"
#include "mix_state.h"

int nc_ens_check_params(const nc_ens_params *p) {
    if (!p || (p->flags & ~NC_ENS_ALL)) return NC_ERR_ARG;
    if ((p->flags & NC_ENS_NGRAM) && nc_ngram_check_params(&p->ngram) != NC_OK) return NC_ERR_ARG;
    if ((p->flags & NC_ENS_MATCH) && nc_match_check_params(&p->match) != NC_OK) return NC_ERR_ARG;
    if ((p->flags & NC_ENS_SKIP) && !(p->flags & NC_ENS_MATCH)) return NC_ERR_ARG; /* the skip reads the match */
    return NC_OK;
}

static double squash(double x) {
    return x >= 0.0 ? 1.0 / (1.0 + nc_exp(-x)) : nc_exp(x) / (1.0 + nc_exp(x));
}

void nc_ens_reset(nc_ens *e) {
    if (e->ng) nc_ngram_reset(e->ng);
    if (e->mt) nc_match_reset(e->mt);
    if (e->bias) nc_bias_reset(e->bias);
    for (uint32_t h = 0; h < e->n_heads; h++) nc_bias_reset(e->heads[h]);
    /* Initial weights: mostly the base; the match model more the longer its match. */
    for (uint32_t s = 0; s < e->n_sets; s++) {
        double *v = &e->v[s * e->n_experts];
        uint32_t group = s % MATCH_GROUPS;
        int skip_mode = s >= e->n_sets / 2;
        for (uint32_t i = 0; i < e->n_experts; i++) v[i] = 0.0;
        v[0] = skip_mode ? -1.0 : 1.5;
        if (e->mt) v[e->n_experts - 1] = group >= 3 ? 2.0 : group == 2 ? 1.0 : 0.0;
    }
    for (uint32_t c = 0; c < e->n_apm; c++)
        for (uint32_t j = 0; j < APM_POINTS; j++)
            e->apm[c * APM_POINTS + j] = squash(-APM_RANGE + j * (2.0 * APM_RANGE / (APM_POINTS - 1)));
    if (e->uni) memset(e->uni, 0, e->n_vocab * sizeof *e->uni);
    e->tokens = 0;
    e->skip_next = 0;
    e->experts_ready = 0;
    memset(e->lane_ctx, 0, e->n_lanes * sizeof *e->lane_ctx);
    memset(e->lane_skip, 0, e->n_lanes);
    memset(e->lane_prev, 0, e->n_lanes * sizeof *e->lane_prev);
    e->prev = 0;
    e->lane = 0;
}

int nc_ens_set_lane(nc_ens *e, uint32_t lane) {
    if (lane >= e->n_lanes) return NC_ERR_ARG;
    if (lane == e->lane) return NC_OK;
    e->lane_skip[e->lane] = (uint8_t)e->skip_next;
    e->skip_next = e->lane_skip[lane];
    e->lane_prev[e->lane] = e->prev;
    e->prev = e->lane_prev[lane];
    if (e->ng) {
        nc_ngram_swap_context(e->ng, &e->lane_ctx[e->lane]);
        nc_ngram_swap_context(e->ng, &e->lane_ctx[lane]);
    }
    if (e->mt) nc_match_set_lane(e->mt, lane);
    e->experts_ready = 0;
    e->lane = lane;
    return NC_OK;
}

static const nc_ens_arithmetic *arithmetic(uint32_t arith) {
    return arith == NC_ARITH_EXACT_DOUBLE ? &nc_ens_exact_double : arith == NC_ARITH_FLOAT32 ? &nc_ens_float32 : NULL;
}

nc_ens *nc_ens_new_lanes(const nc_ens_params *params, uint32_t n_vocab, uint32_t n_extra, double inv_temp,
                         uint32_t n_lanes, uint32_t arith) {
    if (nc_ens_check_params(params) != NC_OK) return NULL;
    if (n_lanes < 1 || n_lanes > NC_MATCH_MAX_LANES || !arithmetic(arith)) return NULL;
    if (!n_vocab || (uint64_t)n_vocab + n_extra > NC_MAX_SYMBOLS) return NULL;
    if (!(inv_temp > 0.0) || inv_temp == INFINITY) return NULL;
    nc_ens *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->p = *params;
    e->n_vocab = n_vocab;
    e->n_extra = n_extra;
    e->inv_temp = inv_temp;
    e->arith = arithmetic(arith);
    e->n_lanes = n_lanes;
    uint32_t f = params->flags;
    int ok = 1;
    if (f & NC_ENS_NGRAM) {
        e->ng = nc_ngram_new(&params->ngram);
        e->n_orders = params->ngram.max_order - params->ngram.min_order + 1;
        ok &= e->ng != NULL;
    }
    if (f & NC_ENS_MATCH) ok &= (e->mt = nc_match_new_lanes(&params->match, n_lanes)) != NULL;
    if (f & NC_ENS_BIAS) {
        e->bias = nc_bias_new(n_vocab, params->bias_lr, params->bias_limit, params->bias_scale_lr);
        ok &= e->bias != NULL;
    }
    if (f & NC_ENS_SKIP) ok &= (e->uni = calloc(n_vocab, sizeof *e->uni)) != NULL;
    e->n_experts = 1 + e->n_orders + (e->mt ? 1 : 0);
    e->n_sets = 2 * (e->n_orders + 1) * MATCH_GROUPS;
    e->n_apm = e->n_sets;
    ok &= e->arith->alloc(e);
    e->lane_ctx = calloc(n_lanes, sizeof *e->lane_ctx);
    e->lane_skip = calloc(n_lanes, 1);
    e->lane_prev = calloc(n_lanes, sizeof *e->lane_prev);
    ok &= e->lane_ctx && e->lane_skip && e->lane_prev;
    e->cdf = malloc(((size_t)n_vocab + n_extra + 1) * sizeof *e->cdf);
    e->v = malloc((size_t)e->n_sets * e->n_experts * sizeof *e->v);
    e->apm = malloc((size_t)e->n_apm * APM_POINTS * sizeof *e->apm);
    ok &= e->cdf && e->v && e->apm;
    if (!ok) {
        nc_ens_free(e);
        return NULL;
    }
    nc_ens_reset(e);
    return e;
}

void nc_ens_free(nc_ens *e) {
    if (!e) return;
    nc_ngram_free(e->ng);
    nc_match_free(e->mt);
    nc_bias_free(e->bias);
    if (e->heads)
        for (uint32_t h = 0; h < e->n_heads; h++) nc_bias_free(e->heads[h]);
    free(e->heads);
    free(e->bsum);
    free(e->uni);
    free(e->base);
    free(e->mix);
    free(e->wt);
    free(e->lane_ctx);
    free(e->lane_skip);
    free(e->lane_prev);
    free(e->cdf);
    free(e->v);
    free(e->apm);
    free(e);
}

int nc_ens_needs_llm(const nc_ens *e) { return !e->skip_next; }

/* Whether the n-gram's highest seen order gives the match's next token at
 * least skip_agree. The predictions it makes are the next predict()'s. */
static int ngram_agrees(nc_ens *e) {
    nc_sparse *match = &e->ex[e->n_experts - 1];
    nc_match_predict(e->mt, match);
    nc_ngram_predict(e->ng, &e->ex[1]);
    e->experts_ready = 1;
    if (!match->n) return 0;
    uint32_t order = nc_ngram_found_order(e->ng);
    if (!order) return 0;
    const nc_sparse *top = &e->ex[1 + order - e->p.ngram.min_order];
    return nc_sparse_get(top, match->tok[0]) >= e->p.skip_agree;
}

static uint32_t match_group(uint32_t len) {
    return len == 0 ? 0 : len < 8 ? 1 : len < 16 ? 2 : len < 32 ? 3 : 4;
}

/* Stretch of a probability given as num / den, clamped to the APM range. */
static double stretch(double num, double den) {
    double rest = den - num;
    if (!(num > 0.0)) return -APM_RANGE;
    if (!(rest > 0.0)) return APM_RANGE;
    double s = nc_log(num) - nc_log(rest);
    return s < -APM_RANGE ? -APM_RANGE : s > APM_RANGE ? APM_RANGE : s;
}

uint32_t nc_ens_fallback_top(const nc_ens *e) {
    uint32_t top = 0, best = 0;
    for (uint32_t i = 0; i < e->n_vocab; i++)
        if (e->uni[i] > best) {
            best = e->uni[i];
            top = i;
        }
    return top;
}

/* The weights of the set chosen by the mode, the highest n-gram order seen
 * (found) and the match's length group; the base's among them, all escapes
 * included, in e->base_mass. */
static void weigh(nc_ens *e, uint32_t found, uint32_t group) {
    /* (Measured: also keying the sets on the base's confidence or on a
     * deterministic n-gram context spreads the learning too thin and costs bits.) */
    e->set = ((e->skipping ? e->n_orders + 1 : 0) + found) * MATCH_GROUPS + group;
    const double *v = &e->v[e->set * e->n_experts];
    double wsum = 0.0;
    for (uint32_t i = 0; i < e->n_experts; i++) {
        e->w[i] = nc_exp(v[i] - e->p.mixer_limit); /* v <= limit: the exponent is <= 0 */
        wsum += e->w[i];
    }
    double a = 0.0;
    for (uint32_t i = 0; i < e->n_experts; i++) {
        e->w[i] /= wsum;
        a += i ? e->w[i] * e->ex[i].escape : e->w[i];
    }
    e->base_mass = a;
}

/* APM on one candidate: the match's prediction, else the mixture's top token
 * (the base's top, or a named one of more mass). Sets the scale of every other
 * token's mass to the coder's spare frequency. */
static void refine(nc_ens *e, const nc_sparse *match, uint32_t top) {
    const double sum = e->sum;
    const uint32_t spare = NC_CDF_TOTAL - e->n_vocab - e->n_extra;
    e->apm_used = 0;
    e->scale_other = (double)spare / sum;
    if (!(e->p.flags & NC_ENS_APM)) return;
    uint32_t cand = top;
    if (match && match->n) {
        cand = match->tok[0];
    } else {
        double best = e->arith->mass(e, cand);
        for (uint32_t i = 1; i < e->n_experts; i++)
            for (uint32_t k = 0; k < e->ex[i].n; k++) {
                uint32_t t = e->ex[i].tok[k];
                double m = e->arith->mass(e, t);
                if (m > best || (m == best && t < cand)) {
                    cand = t;
                    best = m;
                }
            }
    }
    double mc = e->arith->mass(e, cand);
    double rest = sum - mc;
    if (!(rest > APM_MIN_REST * sum)) return;
    e->apm_ctx = e->set;
    double x = (stretch(mc, sum) + APM_RANGE) * ((APM_POINTS - 1) / (2.0 * APM_RANGE));
    uint32_t j = (uint32_t)x;
    if (j > APM_POINTS - 2) j = APM_POINTS - 2;
    double frac = x - (double)j;
    const double *t = &e->apm[e->apm_ctx * APM_POINTS];
    double out = t[j] * (1.0 - frac) + t[j + 1] * frac;
    double pc = APM_KEEP * (mc / sum) + (1.0 - APM_KEEP) * out;
    e->cand = cand;
    e->apm_j = j;
    e->apm_frac = frac;
    e->apm_out = out;
    e->cand_in = pc;
    e->scale_other = (double)spare * (1.0 - pc) / rest;
    e->apm_used = 1;
}

/* Everything up to the coder's table: experts, base, weights, mixture, APM, quantisation. */
static int predict(nc_ens *e, const float *logits) {
    e->skipping = e->skip_next;
    if (e->skipping ? logits != NULL : logits == NULL) return NC_ERR_ARG;
    e->logits = logits;

    /* Cheap experts. */
    uint32_t found = 0, group = 0;
    nc_sparse *match = e->mt ? &e->ex[e->n_experts - 1] : NULL;
    if (e->ng) {
        if (!e->experts_ready) nc_ngram_predict(e->ng, &e->ex[1]);
        uint32_t order = nc_ngram_found_order(e->ng);
        found = order ? order - e->p.ngram.min_order + 1 : 0;
    }
    if (match) {
        if (!e->experts_ready) nc_match_predict(e->mt, match);
        group = match_group(nc_match_length(e->mt));
    }
    e->experts_ready = 0;

    uint32_t top = 0;
    int st = e->arith->base(e, &top);
    if (st != NC_OK) return st;
    weigh(e, found, group);
    e->sum = e->arith->total(e);
    refine(e, match, top);
    return e->arith->quantise(e, top);
}

/* The unquantised probability the coder used for sym. */
static double final_prob(const nc_ens *e, uint32_t sym) {
    if (sym >= e->n_vocab) return 0.0;
    if (e->apm_used && sym == e->cand) return e->cand_in;
    return e->arith->mass(e, sym) * e->scale_other / (double)(NC_CDF_TOTAL - e->n_vocab - e->n_extra);
}

/* Mixer and APM: learn from the coded token, given its mixture probability
 * pm and its base probability b. */
static void learn_mixer(nc_ens *e, uint32_t sym, double pm, double b) {
    /* Mixer: exponentiated gradient on -log p(sym). */
    if (pm > 0.0) {
        double *v = &e->v[e->set * e->n_experts];
        for (uint32_t i = 0; i < e->n_experts; i++) {
            double pi = i ? nc_sparse_get(&e->ex[i], sym) + e->ex[i].escape * b : b;
            double x = v[i] + e->p.mixer_lr * (pi / pm - 1.0);
            v[i] = x < -e->p.mixer_limit ? -e->p.mixer_limit : x > e->p.mixer_limit ? e->p.mixer_limit : x;
        }
    }
    if (e->apm_used) {
        double *t = &e->apm[e->apm_ctx * APM_POINTS];
        double err = (sym == e->cand ? 1.0 : 0.0) - e->apm_out;
        double r = e->p.apm_rate;
        double a = t[e->apm_j] + r * err * (1.0 - e->apm_frac);
        double c = t[e->apm_j + 1] + r * err * e->apm_frac;
        t[e->apm_j] = a < 0.0 ? 0.0 : a > 1.0 ? 1.0 : a;
        t[e->apm_j + 1] = c < 0.0 ? 0.0 : c > 1.0 ? 1.0 : c;
    }
}

/* The cheap models learn the token; then decide about the next one. */
static void learn_models(nc_ens *e, uint32_t sym) {
    if (e->ng) nc_ngram_update(e->ng, sym);
    if (e->mt) nc_match_update(e->mt, sym);
    if (e->uni) e->uni[sym]++;
    e->tokens++;
    e->prev = sym;
    e->skip_next = 0;
    if ((e->p.flags & NC_ENS_SKIP) && e->tokens >= e->p.skip_warmup) {
        uint32_t len = nc_match_length(e->mt);
        double confidence = nc_match_confidence(e->mt, nc_match_bucket(e->mt));
        const nc_ens_params *p = &e->p;
        int solo = p->skip_solo_min_len && len >= p->skip_solo_min_len && confidence >= p->skip_solo_confidence;
        /* The n-gram is asked last: it costs a prediction. */
        e->skip_next = solo || (len >= p->skip_min_len && confidence >= p->skip_confidence &&
                                (p->skip_agree <= 0.0 || !e->ng || ngram_agrees(e)));
    }
}

/* Learn from the coded token and decide about the next one. */
static void update(nc_ens *e, uint32_t sym) {
    if (sym >= e->n_vocab) return; /* escapes are outside every model */
    learn_mixer(e, sym, e->arith->mass(e, sym) / e->sum, e->arith->base_prob(e, sym));
    if (e->bias && !e->skipping) e->arith->learn_bias(e, sym);
    learn_models(e, sym);
}

int nc_ens_encode(nc_ens *e, nc_encoder *enc, const float *logits, uint32_t sym, uint32_t *freq_out,
                  double *prob_out) {
    if (sym >= e->n_vocab + e->n_extra) return NC_ERR_ARG;
    int st = predict(e, logits);
    if (st != NC_OK) return st;
    if (freq_out) *freq_out = e->arith->freq(e, sym);
    if (prob_out) *prob_out = final_prob(e, sym);
    st = e->arith->encode(e, enc, sym);
    if (st != NC_OK) return st;
    update(e, sym);
    return NC_OK;
}

int nc_ens_decode(nc_ens *e, nc_decoder *dec, const float *logits, uint32_t *sym_out, uint32_t *freq_out) {
    int st = predict(e, logits);
    if (st != NC_OK) return st;
    st = e->arith->decode(e, dec, sym_out);
    if (st != NC_OK) return st;
    if (freq_out) *freq_out = e->arith->freq(e, *sym_out);
    update(e, *sym_out);
    return NC_OK;
}

uint32_t nc_ens_regions(nc_ens *e, nc_region *out, uint32_t max) {
    uint32_t n = 0;
    if (e->ng) n = nc_ngram_regions(e->ng, out, max, n);
    if (e->mt) n = nc_match_regions(e->mt, out, max, n);
    if (e->bias) n = nc_bias_regions(e->bias, out, max, n);
    n = nc_region_add(out, max, n, e->v, (size_t)e->n_sets * e->n_experts * sizeof *e->v);
    n = nc_region_add(out, max, n, e->apm, (size_t)e->n_apm * APM_POINTS * sizeof *e->apm);
    if (e->uni) n = nc_region_add(out, max, n, e->uni, e->n_vocab * sizeof *e->uni);
    n = nc_region_add(out, max, n, &e->tokens, sizeof e->tokens);
    /* Parts later layouts added come last: earlier dictionaries keep their order. */
    for (uint32_t h = 0; h < e->n_heads; h++) n = nc_bias_regions(e->heads[h], out, max, n);
    return n;
}

int nc_ens_observe(nc_ens *e, const uint32_t *tokens, uint32_t n) {
    if (!e || (n && !tokens)) return NC_ERR_ARG;
    nc_ngram_context empty;
    memset(&empty, 0, sizeof empty);
    if (e->ng) nc_ngram_swap_context(e->ng, &empty);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t t = tokens[i];
        if (t >= e->n_vocab) continue;
        if (e->ng) nc_ngram_update(e->ng, t);
        if (e->mt) nc_match_update(e->mt, t);
        if (e->uni) e->uni[t]++;
        e->tokens++;
    }
    if (e->ng) {
        memset(&empty, 0, sizeof empty);
        nc_ngram_swap_context(e->ng, &empty);
    }
    e->prev = 0;
    e->skip_next = 0;
    e->experts_ready = 0;
    return NC_OK;
}
