#include "lanes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cdf.h"
#include "vec.h"

typedef struct {
    uint64_t begin, end, next; /* the stream's symbols in ln->sym; next: the next to code */
    nc_ens *ens;               /* its own ensemble (not shared), or NULL */
    nc_encoder *enc;
    nc_decoder *dec;
    uint32_t *pending; /* tokens coded since the stream last fed the model */
    uint32_t n_pending;
    int needs;       /* its next symbol is coded with the model's logits */
    int32_t out_row; /* those logits: row of the last outputs, or -1: in `saved` */
    float *saved;
    uint32_t pos; /* cells of its window in use */
} lane;

struct nc_lanes {
    nc_lanes_config c;
    nc_ens_params ens_params;
    nc_ens *shared;
    lane *lanes;
    uint32_t *sym;
    uint64_t n_sym;
    uint32_t *cdf;
    float *w; /* NC_ARITH_FLOAT32 scratch */
    nc_batch b;
    int decoding, started, finished;
    /* this step's plan: which lanes feed, in lane order */
    uint32_t *feed_lane;
    uint8_t *feed_logits;
    uint32_t n_feed;
    nc_lanes_stats stats;
};

nc_lanes *nc_lanes_new(const nc_lanes_config *config) {
    const nc_lanes_config *c = config;
    if (!c || c->n_lanes < 1 || c->n_lanes > NC_MATCH_MAX_LANES || (c->arith != NC_ARITH_EXACT_DOUBLE && c->arith != NC_ARITH_FLOAT32)) return NULL;
    if (!c->n_vocab || (uint64_t)c->n_vocab + c->n_extra > NC_MAX_SYMBOLS) return NULL;
    if (!(c->inv_temp > 0.0) || c->inv_temp == INFINITY) return NULL;
    if (c->batch < 1 || c->slide < c->batch || c->context < c->slide + 2 || c->start_token < 0) return NULL;
    /* A primed window leaves a cell for the first token; it slides as any other once full. */
    if (c->primed && (c->primed + 1 > c->context || c->first_token < 0)) return NULL;
    nc_lanes *ln = calloc(1, sizeof *ln);
    if (!ln) return NULL;
    ln->c = *c;
    if (c->ensemble) {
        ln->ens_params = *c->ensemble;
        ln->c.ensemble = &ln->ens_params;
    }
    int ok = 1;
    ln->lanes = calloc(c->n_lanes, sizeof *ln->lanes);
    ln->cdf = malloc(((size_t)c->n_vocab + c->n_extra + 1) * sizeof *ln->cdf);
    ln->w = malloc((size_t)c->n_vocab * sizeof *ln->w);
    ln->feed_lane = malloc(c->n_lanes * sizeof *ln->feed_lane);
    ln->feed_logits = malloc(c->n_lanes);
    ok = ln->lanes && ln->cdf && ln->w && ln->feed_lane && ln->feed_logits;
    if (ok && c->ensemble && c->shared)
        ok = (ln->shared = nc_ens_new_lanes(c->ensemble, c->n_vocab, c->n_extra, c->inv_temp, c->n_lanes,
                                            c->arith)) != NULL;
    for (uint32_t k = 0; ok && k < c->n_lanes; k++) {
        lane *l = &ln->lanes[k];
        ok = (l->pending = malloc(c->batch * sizeof *l->pending)) != NULL;
        if (ok && c->ensemble && !c->shared)
            ok = (l->ens = nc_ens_new_lanes(c->ensemble, c->n_vocab, c->n_extra, c->inv_temp, 1, c->arith)) !=
                 NULL;
    }
    if (!ok) {
        nc_lanes_free(ln);
        return NULL;
    }
    return ln;
}

void nc_lanes_free(nc_lanes *ln) {
    if (!ln) return;
    if (ln->lanes)
        for (uint32_t k = 0; k < ln->c.n_lanes; k++) {
            lane *l = &ln->lanes[k];
            nc_ens_free(l->ens);
            nc_encoder_free(l->enc);
            nc_decoder_free(l->dec);
            free(l->pending);
            free(l->saved);
        }
    nc_ens_free(ln->shared);
    free(ln->lanes);
    free(ln->sym);
    free(ln->cdf);
    free(ln->w);
    free(ln->feed_lane);
    free(ln->feed_logits);
    free(ln);
}

/* Write the plan of this step's feeds into the batch; record the slides. */
static uint32_t plan(nc_lanes *ln, const uint32_t *const *tokens, uint32_t *slides_out, uint32_t *n_slides) {
    const nc_batch *b = &ln->b;
    uint32_t n = 0, rows = 0;
    *n_slides = 0;
    for (uint32_t f = 0; f < ln->n_feed; f++) {
        uint32_t k = ln->feed_lane[f];
        lane *l = &ln->lanes[k];
        const uint32_t *t = tokens ? tokens[f] : l->pending;
        uint32_t count = tokens ? 1 : l->n_pending;
        if (l->pos + count > ln->c.context) { /* count <= batch <= slide: one slide makes room */
            slides_out[(*n_slides)++] = k;
            l->pos -= ln->c.slide;
        }
        for (uint32_t i = 0; i < count; i++, n++) {
            b->token[n] = (int32_t)t[i];
            b->pos[n] = (int32_t)(l->pos + i);
            b->n_seq_id[n] = 1;
            b->seq_id[n][0] = (int32_t)k;
            b->logits[n] = 0;
        }
        l->pos += count;
        l->n_pending = 0;
        if (ln->feed_logits[f]) {
            b->logits[n - 1] = 1;
            l->out_row = (int32_t)rows++;
        }
    }
    return n;
}

static int begin(nc_lanes *ln, const nc_batch *b, uint32_t *n_tokens_out) {
    if (!b || !b->token || !b->pos || !b->n_seq_id || !b->seq_id || !b->logits || !n_tokens_out) return NC_ERR_ARG;
    ln->b = *b;
    if (ln->shared) nc_ens_reset(ln->shared);
    const uint32_t start = (uint32_t)(ln->c.primed ? ln->c.first_token : ln->c.start_token);
    const uint32_t *starts[NC_MATCH_MAX_LANES];
    for (uint32_t k = 0; k < ln->c.n_lanes; k++) {
        lane *l = &ln->lanes[k];
        if (l->ens) nc_ens_reset(l->ens);
        l->n_pending = 0;
        l->needs = 1;
        l->pos = ln->c.primed;
        ln->feed_lane[k] = k;
        ln->feed_logits[k] = 1;
        starts[k] = &start;
    }
    ln->n_feed = ln->c.n_lanes;
    memset(&ln->stats, 0, sizeof ln->stats);
    uint32_t slides[NC_MATCH_MAX_LANES], n_slides;
    *n_tokens_out = plan(ln, starts, slides, &n_slides);
    ln->started = 1;
    return NC_OK;
}

int nc_lanes_begin_encode(nc_lanes *ln, const uint32_t *symbols, const uint64_t *bounds, const nc_batch *b,
                          uint32_t *n_tokens_out) {
    if (!ln || ln->started || !bounds || bounds[0] != 0) return NC_ERR_ARG;
    uint32_t L = ln->c.n_lanes;
    for (uint32_t k = 0; k < L; k++)
        if (bounds[k + 1] < bounds[k]) return NC_ERR_ARG;
    uint64_t n = bounds[L];
    if (n && !symbols) return NC_ERR_ARG;
    uint32_t nsym = ln->c.n_vocab + ln->c.n_extra;
    for (uint64_t i = 0; i < n; i++)
        if (symbols[i] >= nsym) return NC_ERR_ARG;
    ln->sym = malloc((n ? n : 1) * sizeof *ln->sym);
    if (!ln->sym) return NC_ERR_NOMEM;
    if (n) memcpy(ln->sym, symbols, n * sizeof *ln->sym);
    ln->n_sym = n;
    for (uint32_t k = 0; k < L; k++) {
        lane *l = &ln->lanes[k];
        l->begin = l->next = bounds[k];
        l->end = bounds[k + 1];
        if (!(l->enc = nc_encoder_new())) return NC_ERR_NOMEM;
    }
    return begin(ln, b, n_tokens_out);
}

int nc_lanes_begin_decode(nc_lanes *ln, const uint8_t *const *payloads, const size_t *lens,
                          const uint64_t *counts, const nc_batch *b, uint32_t *n_tokens_out) {
    if (!ln || ln->started || !payloads || !lens || !counts) return NC_ERR_ARG;
    uint32_t L = ln->c.n_lanes;
    uint64_t n = 0;
    for (uint32_t k = 0; k < L; k++) {
        lane *l = &ln->lanes[k];
        l->begin = l->next = n;
        n += counts[k];
        l->end = n;
        if (!(l->dec = nc_decoder_new(payloads[k], lens[k]))) return NC_ERR_NOMEM;
    }
    ln->sym = malloc((n ? n : 1) * sizeof *ln->sym);
    if (!ln->sym) return NC_ERR_NOMEM;
    ln->n_sym = n;
    ln->decoding = 1;
    return begin(ln, b, n_tokens_out);
}

static int code_llm(nc_lanes *ln, lane *l, const float *logits, uint32_t *sym, uint32_t *freq, double *prob) {
    const nc_lanes_config *c = &ln->c;
    int st;
    if (c->arith == NC_ARITH_EXACT_DOUBLE) {
        if (ln->decoding) return nc_decode_logits(l->dec, logits, c->n_vocab, c->n_extra, c->inv_temp, ln->cdf, sym, freq);
        return nc_encode_logits(l->enc, logits, c->n_vocab, c->n_extra, c->inv_temp, ln->cdf, *sym, freq, prob);
    }
    uint32_t nsym = c->n_vocab + c->n_extra;
    uint32_t *freqs = ln->cdf + 1;
    st = nc_f32_freqs_from_logits(logits, c->n_vocab, c->n_extra, (float)c->inv_temp, ln->w, freqs,
                                  ln->decoding ? -1 : (int64_t)*sym, prob);
    if (st != NC_OK) return st;
    if (ln->decoding) st = nc_f32_decode(l->dec, freqs, nsym, sym);
    else st = nc_f32_encode(l->enc, freqs, nsym, *sym);
    if (st == NC_OK) *freq = freqs[*sym];
    return st;
}

int nc_lanes_step(nc_lanes *ln, const float *outputs, uint32_t *n_tokens_out, uint32_t *slides_out,
                  uint32_t *n_slides_out, int *done_out) {
    if (!ln || !ln->started || ln->finished || !n_tokens_out || !slides_out || !n_slides_out || !done_out)
        return NC_ERR_ARG;
    const nc_lanes_config *c = &ln->c;
    const uint32_t V = c->n_vocab;
    ln->n_feed = 0;
    int done = 1;
    for (uint32_t k = 0; k < c->n_lanes; k++) {
        lane *l = &ln->lanes[k];
        if (l->next >= l->end) continue;
        const float *logits = NULL;
        if (l->needs) {
            if (l->out_row >= 0 && !outputs) return NC_ERR_ARG;
            logits = l->out_row >= 0 ? outputs + (size_t)l->out_row * V : l->saved;
        }
        nc_ens *e = l->ens ? l->ens : ln->shared;
        if (e == ln->shared && e) {
            int st = nc_ens_set_lane(e, k);
            if (st != NC_OK) return st;
        }
        uint32_t sym = ln->decoding ? 0 : ln->sym[l->next], freq = 0;
        double prob = 0.0;
        int st;
        if (e) {
            st = ln->decoding ? nc_ens_decode(e, l->dec, logits, &sym, &freq)
                              : nc_ens_encode(e, l->enc, logits, sym, &freq, &prob);
            ln->stats.skipped += logits == NULL;
        } else {
            st = code_llm(ln, l, logits, &sym, &freq, &prob);
        }
        if (st != NC_OK) return st;
        if (ln->decoding) {
            ln->sym[l->next] = sym;
        } else {
            ln->stats.coded_bits -= log2((double)freq / NC_CDF_TOTAL);
            /* Escapes are outside the model: count them at the floor, as coded. */
            ln->stats.model_bits += prob > 0.0 ? -log2(prob) : NC_CDF_BITS;
        }
        ln->stats.symbols++;
        ln->stats.escapes += sym >= V;
        l->next++;
        if (l->next >= l->end) continue; /* the decoder never needs logits after the last symbol */
        done = 0;
        if (sym >= V) {
            /* The model does not see escapes: the same logits code the next symbol. */
            if (l->needs && l->out_row >= 0) {
                if (!l->saved && !(l->saved = malloc((size_t)V * sizeof *l->saved))) return NC_ERR_NOMEM;
                memcpy(l->saved, logits, (size_t)V * sizeof *l->saved);
                l->out_row = -1;
            }
            continue;
        }
        l->pending[l->n_pending++] = sym;
        l->needs = e ? nc_ens_needs_llm(e) : 1;
        if (l->needs || l->n_pending == c->batch) {
            ln->feed_lane[ln->n_feed] = k;
            ln->feed_logits[ln->n_feed] = (uint8_t)l->needs;
            ln->n_feed++;
        }
    }
    *n_tokens_out = plan(ln, NULL, slides_out, n_slides_out);
    *done_out = done;
    return NC_OK;
}

int nc_lanes_finish(nc_lanes *ln) {
    if (!ln || !ln->started || ln->decoding || ln->finished) return NC_ERR_STATE;
    for (uint32_t k = 0; k < ln->c.n_lanes; k++) {
        lane *l = &ln->lanes[k];
        if (l->next != l->end) return NC_ERR_STATE;
        int st = nc_encoder_finish(l->enc);
        if (st != NC_OK) return st;
    }
    ln->finished = 1;
    return NC_OK;
}

int nc_lanes_payload(const nc_lanes *ln, uint32_t k, const uint8_t **data_out, size_t *len_out) {
    if (!ln || !ln->finished || k >= ln->c.n_lanes || !data_out || !len_out) return NC_ERR_ARG;
    *data_out = nc_encoder_data(ln->lanes[k].enc);
    *len_out = nc_encoder_size(ln->lanes[k].enc);
    return NC_OK;
}

int nc_lanes_check_end(const nc_lanes *ln) {
    if (!ln || !ln->started || !ln->decoding) return NC_ERR_STATE;
    for (uint32_t k = 0; k < ln->c.n_lanes; k++) {
        const lane *l = &ln->lanes[k];
        if (l->next != l->end) return NC_ERR_STATE;
        int st = nc_decoder_check_end(l->dec);
        if (st != NC_OK) return st;
    }
    return NC_OK;
}

const uint32_t *nc_lanes_symbols(const nc_lanes *ln) { return ln ? ln->sym : NULL; }

void nc_lanes_get_stats(const nc_lanes *ln, nc_lanes_stats *out) {
    if (ln && out) *out = ln->stats;
}

nc_ens *nc_lanes_ensemble(nc_lanes *ln) {
    if (!ln) return NULL;
    if (ln->shared) return ln->shared;
    return ln->c.n_lanes == 1 ? ln->lanes[0].ens : NULL;
}
