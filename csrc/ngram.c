#include "ngram.h"

#include <stdlib.h>
#include <string.h>

/* Per order: 2^bits slots; slot s owns check[s], and counts/tokens
 * [s * candidates, (s + 1) * candidates). A count of 0 is a free entry. */
typedef struct {
    uint32_t *check; /* 0: empty slot */
    uint16_t *count;
    uint32_t *tok;
} table;

struct nc_ngram {
    nc_ngram_params p;
    uint32_t n_orders;
    uint64_t mask;
    table t[NC_NGRAM_MAX_ORDER];
    /* The last max_order tokens, newest last, and how many are valid. */
    uint32_t ctx[NC_NGRAM_MAX_ORDER];
    uint32_t n_ctx;
    /* Set by predict, used by update: the slot of each order's context, or -1. */
    int64_t slot[NC_NGRAM_MAX_ORDER];
    uint64_t hash[NC_NGRAM_MAX_ORDER];
    uint32_t found;
    int predicted;
};

int nc_ngram_check_params(const nc_ngram_params *p) {
    if (!p || p->min_order < 1 || p->max_order < p->min_order || p->max_order > NC_NGRAM_MAX_ORDER)
        return NC_ERR_ARG;
    if (p->table_bits < 8 || p->table_bits > 26) return NC_ERR_ARG;
    if (p->candidates < 1 || p->candidates > NC_SPARSE_MAX) return NC_ERR_ARG;
    return NC_OK;
}

nc_ngram *nc_ngram_new(const nc_ngram_params *params) {
    if (nc_ngram_check_params(params) != NC_OK) return NULL;
    nc_ngram *ng = calloc(1, sizeof *ng);
    if (!ng) return NULL;
    ng->p = *params;
    ng->n_orders = params->max_order - params->min_order + 1;
    size_t slots = (size_t)1 << params->table_bits;
    ng->mask = slots - 1;
    for (uint32_t k = 0; k < ng->n_orders; k++) {
        table *t = &ng->t[k];
        t->check = calloc(slots, sizeof *t->check);
        t->count = calloc(slots * params->candidates, sizeof *t->count);
        t->tok = calloc(slots * params->candidates, sizeof *t->tok);
        if (!t->check || !t->count || !t->tok) {
            nc_ngram_free(ng);
            return NULL;
        }
    }
    nc_ngram_reset(ng);
    return ng;
}

void nc_ngram_free(nc_ngram *ng) {
    if (!ng) return;
    for (uint32_t k = 0; k < NC_NGRAM_MAX_ORDER; k++) {
        free(ng->t[k].check);
        free(ng->t[k].count);
        free(ng->t[k].tok);
    }
    free(ng);
}

void nc_ngram_reset(nc_ngram *ng) {
    size_t slots = (size_t)ng->mask + 1;
    for (uint32_t k = 0; k < ng->n_orders; k++) {
        memset(ng->t[k].check, 0, slots * sizeof *ng->t[k].check);
        memset(ng->t[k].count, 0, slots * ng->p.candidates * sizeof *ng->t[k].count);
    }
    ng->n_ctx = 0;
    ng->found = 0;
    ng->predicted = 0;
}

/* Hash of the newest `order` tokens of the context (splitmix64 finaliser per step). */
static uint64_t context_hash(const nc_ngram *ng, uint32_t order) {
    uint64_t h = 0x9E3779B97F4A7C15ull * (order + 1);
    for (uint32_t i = NC_NGRAM_MAX_ORDER - order; i < NC_NGRAM_MAX_ORDER; i++) {
        h ^= (uint64_t)ng->ctx[i] + 0x632BE59BD9B4E019ull;
        h ^= h >> 30;
        h *= 0xBF58476D1CE4E5B9ull;
        h ^= h >> 27;
        h *= 0x94D049BB133111EBull;
        h ^= h >> 31;
    }
    return h;
}

static uint32_t hash_check(uint64_t h) { return (uint32_t)h | 1u; /* never 0, the empty mark */ }

/* The slot holding this context in its two-way bucket, or -1. */
static int64_t find_slot(const nc_ngram *ng, const table *t, uint64_t h) {
    uint64_t s = (h >> 32) & ng->mask;
    uint32_t check = hash_check(h);
    if (t->check[s] == check) return (int64_t)s;
    if (t->check[s ^ 1] == check) return (int64_t)(s ^ 1);
    return -1;
}

static uint32_t slot_total(const nc_ngram *ng, const table *t, uint64_t s) {
    uint32_t total = 0;
    const uint16_t *c = &t->count[s * ng->p.candidates];
    for (uint32_t i = 0; i < ng->p.candidates; i++) total += c[i];
    return total;
}

void nc_ngram_predict(nc_ngram *ng, nc_sparse *out) {
    ng->found = 0;
    for (uint32_t k = 0; k < ng->n_orders; k++) {
        uint32_t order = ng->p.min_order + k;
        nc_sparse *o = &out[k];
        nc_sparse_clear(o);
        ng->slot[k] = -1;
        if (ng->n_ctx < order) continue;
        table *t = &ng->t[k];
        uint64_t h = context_hash(ng, order);
        ng->hash[k] = h;
        int64_t s = find_slot(ng, t, h);
        ng->slot[k] = s;
        if (s < 0) continue;
        const uint16_t *c = &t->count[(uint64_t)s * ng->p.candidates];
        const uint32_t *tk = &t->tok[(uint64_t)s * ng->p.candidates];
        uint32_t total = 0, distinct = 0;
        for (uint32_t i = 0; i < ng->p.candidates; i++) {
            if (!c[i]) continue;
            total += c[i];
            distinct++;
        }
        if (!total) continue;
        double denom = (double)total + (double)distinct;
        for (uint32_t i = 0; i < ng->p.candidates; i++) {
            if (!c[i]) continue;
            o->tok[o->n] = tk[i];
            o->p[o->n] = (double)c[i] / denom;
            o->n++;
        }
        o->escape = (double)distinct / denom;
        ng->found = order;
    }
    ng->predicted = 1;
}

uint32_t nc_ngram_found_order(const nc_ngram *ng) { return ng->found; }

static void count_token(nc_ngram *ng, table *t, uint64_t s, uint32_t token) {
    uint32_t m = ng->p.candidates;
    uint16_t *c = &t->count[s * m];
    uint32_t *tk = &t->tok[s * m];
    for (uint32_t i = 0; i < m; i++) {
        if (c[i] && tk[i] == token) {
            if (++c[i] >= ng->p.count_limit)
                for (uint32_t j = 0; j < m; j++) c[j] = (uint16_t)((c[j] + 1u) >> 1);
            return;
        }
    }
    /* New continuation: a free entry, else the first least counted one. */
    uint32_t victim = 0;
    for (uint32_t i = 0; i < m; i++) {
        if (!c[i]) {
            victim = i;
            break;
        }
        if (c[i] < c[victim]) victim = i;
    }
    c[victim] = 1;
    tk[victim] = token;
}

int nc_ngram_update(nc_ngram *ng, uint32_t token) {
    if (!ng->predicted) {
        /* Update needs the slots predict found; compute them if the caller skipped it. */
        nc_sparse scratch[NC_NGRAM_MAX_ORDER];
        nc_ngram_predict(ng, scratch);
    }
    for (uint32_t k = 0; k < ng->n_orders; k++) {
        uint32_t order = ng->p.min_order + k;
        if (ng->n_ctx < order) continue;
        table *t = &ng->t[k];
        int64_t s = ng->slot[k];
        if (s < 0) {
            /* Claim a slot: an empty way, else the way with fewer counts (first on a tie). */
            uint64_t h = ng->hash[k];
            uint64_t a = (h >> 32) & ng->mask, b = a ^ 1;
            uint64_t v = a;
            if (t->check[a] && (!t->check[b] || slot_total(ng, t, b) < slot_total(ng, t, a))) v = b;
            t->check[v] = hash_check(h);
            memset(&t->count[v * ng->p.candidates], 0, ng->p.candidates * sizeof *t->count);
            s = (int64_t)v;
        }
        count_token(ng, t, (uint64_t)s, token);
    }
    memmove(ng->ctx, ng->ctx + 1, (NC_NGRAM_MAX_ORDER - 1) * sizeof *ng->ctx);
    ng->ctx[NC_NGRAM_MAX_ORDER - 1] = token;
    if (ng->n_ctx < NC_NGRAM_MAX_ORDER) ng->n_ctx++;
    ng->predicted = 0;
    return NC_OK;
}

void nc_ngram_swap_context(nc_ngram *ng, nc_ngram_context *c) {
    nc_ngram_context mine;
    memcpy(mine.ctx, ng->ctx, sizeof mine.ctx);
    mine.n_ctx = ng->n_ctx;
    memcpy(ng->ctx, c->ctx, sizeof ng->ctx);
    ng->n_ctx = c->n_ctx;
    *c = mine;
    ng->found = 0;
    ng->predicted = 0;
}

uint32_t nc_ngram_regions(nc_ngram *ng, nc_region *out, uint32_t max, uint32_t n) {
    size_t slots = (size_t)ng->mask + 1, cells = slots * ng->p.candidates;
    for (uint32_t k = 0; k < ng->n_orders; k++) {
        n = nc_region_add(out, max, n, ng->t[k].check, slots * sizeof *ng->t[k].check);
        n = nc_region_add(out, max, n, ng->t[k].count, cells * sizeof *ng->t[k].count);
        n = nc_region_add(out, max, n, ng->t[k].tok, cells * sizeof *ng->t[k].tok);
    }
    return n;
}
