#include "match.h"

#include <stdlib.h>
#include <string.h>

/* Verifying further back than the last length bucket starts changes nothing. */
#define NC_MATCH_VERIFY 2048

/* One stream's history and current match. The match may follow another
 * stream's history (lanes of a frame share one hash table). */
typedef struct {
    uint32_t *hist; /* ring of 2^ring_bits tokens, by absolute position */
    uint64_t n;     /* tokens seen */
    uint64_t ptr;   /* position of the predicted token in lane `src` (valid when len > 0) */
    uint32_t src;
    uint32_t len;
} stream;

/* A table entry: the stream in the bits above POS_BITS, the position after the context + 1 below. */
#define POS_BITS 40

struct nc_match {
    nc_match_params p;
    uint32_t n_lanes;
    stream *lanes;
    stream *cur;
    uint64_t hist_mask;
    uint64_t *table; /* context hash -> entry (0: empty) */
    uint64_t table_mask;
    double hit[NC_MATCH_BUCKETS];
    uint32_t events[NC_MATCH_BUCKETS];
};

int nc_match_check_params(const nc_match_params *p) {
    if (!p || p->hash_bits < 8 || p->hash_bits > 26) return NC_ERR_ARG;
    if (p->history_bits < 10 || p->history_bits > 30) return NC_ERR_ARG;
    return NC_OK;
}

nc_match *nc_match_new(const nc_match_params *params) { return nc_match_new_lanes(params, 1); }

nc_match *nc_match_new_lanes(const nc_match_params *params, uint32_t n_lanes) {
    if (nc_match_check_params(params) != NC_OK || n_lanes < 1 || n_lanes > NC_MATCH_MAX_LANES) return NULL;
    nc_match *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->p = *params;
    m->n_lanes = n_lanes;
    /* The history is split between the streams: the total stays 2^history_bits. */
    uint32_t bits = params->history_bits;
    for (uint32_t l = 1; l < n_lanes && bits > 10; l <<= 1) bits--;
    m->hist_mask = ((uint64_t)1 << bits) - 1;
    m->table_mask = ((uint64_t)1 << params->hash_bits) - 1;
    m->lanes = calloc(n_lanes, sizeof *m->lanes);
    m->table = malloc((m->table_mask + 1) * sizeof *m->table);
    int ok = m->lanes && m->table;
    for (uint32_t l = 0; ok && l < n_lanes; l++)
        ok = (m->lanes[l].hist = calloc(m->hist_mask + 1, sizeof *m->lanes[l].hist)) != NULL;
    if (!ok) {
        nc_match_free(m);
        return NULL;
    }
    nc_match_reset(m);
    return m;
}

void nc_match_free(nc_match *m) {
    if (!m) return;
    if (m->lanes)
        for (uint32_t l = 0; l < m->n_lanes; l++) free(m->lanes[l].hist);
    free(m->lanes);
    free(m->table);
    free(m);
}

void nc_match_reset(nc_match *m) {
    memset(m->table, 0, (m->table_mask + 1) * sizeof *m->table);
    for (uint32_t l = 0; l < m->n_lanes; l++) {
        stream *s = &m->lanes[l];
        /* What the last frame wrote goes too: the history is part of the learned
         * state a dictionary saves (nc_match_regions), which must be the same for
         * the same samples and never hold another frame's tokens. */
        uint64_t used = s->n > m->hist_mask ? m->hist_mask + 1 : s->n;
        memset(s->hist, 0, used * sizeof *s->hist);
        s->n = 0;
        s->len = 0;
        s->ptr = 0;
        s->src = l;
    }
    m->cur = &m->lanes[0];
    /* Prior: an even chance, trusted for one event; the rate is learned fast. */
    for (uint32_t b = 0; b < NC_MATCH_BUCKETS; b++) {
        m->hit[b] = 0.5;
        m->events[b] = 0;
    }
}

int nc_match_set_lane(nc_match *m, uint32_t lane) {
    if (lane >= m->n_lanes) return NC_ERR_ARG;
    m->cur = &m->lanes[lane];
    return NC_OK;
}

/* Lengths 1..15 have a bucket each; then one per doubling up to 2^(23-16+4). */
static uint32_t bucket_of(uint32_t len) {
    if (len < 16) return len;
    uint32_t b = 16;
    for (uint32_t l = len >> 5; l && b < NC_MATCH_BUCKETS - 1; l >>= 1) b++;
    return b;
}

uint32_t nc_match_length(const nc_match *m) { return m->cur->len; }
uint32_t nc_match_bucket(const nc_match *m) { return bucket_of(m->cur->len); }

double nc_match_confidence(const nc_match *m, uint32_t bucket) {
    return bucket < NC_MATCH_BUCKETS ? m->hit[bucket] : 0.0;
}

static uint32_t at(const nc_match *m, const stream *s, uint64_t pos) { return s->hist[pos & m->hist_mask]; }

void nc_match_predict(nc_match *m, nc_sparse *out) {
    nc_sparse_clear(out);
    const stream *c = m->cur;
    if (!c->len) return;
    double p = m->hit[bucket_of(c->len)];
    out->n = 1;
    out->tok[0] = at(m, &m->lanes[c->src], c->ptr);
    out->p[0] = p;
    out->escape = 1.0 - p;
}

static uint64_t hash_last(const nc_match *m, const stream *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (uint64_t i = s->n - m->p.min_len; i < s->n; i++) {
        h ^= (uint64_t)at(m, s, i) + 1;
        h *= 0x100000001B3ull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static int in_history(const nc_match *m, const stream *s, uint64_t pos) {
    return pos < s->n && s->n - pos <= m->hist_mask + 1;
}

int nc_match_update(nc_match *m, uint32_t token) {
    stream *c = m->cur;
    if (c->len) {
        uint32_t b = bucket_of(c->len);
        int right = at(m, &m->lanes[c->src], c->ptr) == token;
        if (m->events[b] < m->p.rate_limit) m->events[b]++;
        m->hit[b] += ((right ? 1.0 : 0.0) - m->hit[b]) / ((double)m->events[b] + 0.5);
        if (right) {
            if (c->len < NC_MATCH_MAX_LEN) c->len++;
            c->ptr++;
        } else {
            c->len = 0;
        }
    }
    c->hist[c->n & m->hist_mask] = token;
    c->n++;
    if (c->len && !in_history(m, &m->lanes[c->src], c->ptr)) c->len = 0; /* fell out of the ring */
    if (c->n < m->p.min_len) return NC_OK;
    uint64_t slot = hash_last(m, c) & m->table_mask;
    uint64_t cand = m->table[slot];
    m->table[slot] = ((uint64_t)(c - m->lanes) << POS_BITS) | (c->n + 1);
    if (c->len || !cand) return NC_OK;
    const stream *src = &m->lanes[cand >> POS_BITS];
    uint64_t pos = (cand & (((uint64_t)1 << POS_BITS) - 1)) - 1; /* the token that followed */
    if (!in_history(m, src, pos)) return NC_OK;
    /* Verify backwards: a hash collision must not pass for a match. */
    uint32_t len = 0;
    while (len < NC_MATCH_VERIFY && len < pos && in_history(m, c, c->n - len - 1) && in_history(m, src, pos - len - 1) &&
           at(m, src, pos - len - 1) == at(m, c, c->n - len - 1))
        len++;
    if (len >= m->p.min_len) {
        c->len = len;
        c->ptr = pos;
        c->src = (uint32_t)(src - m->lanes);
    }
    return NC_OK;
}

uint32_t nc_match_regions(nc_match *m, nc_region *out, uint32_t max, uint32_t n) {
    n = nc_region_add(out, max, n, m->table, (m->table_mask + 1) * sizeof *m->table);
    n = nc_region_add(out, max, n, m->hit, sizeof m->hit);
    n = nc_region_add(out, max, n, m->events, sizeof m->events);
    for (uint32_t l = 0; l < m->n_lanes; l++) {
        stream *s = &m->lanes[l];
        n = nc_region_add(out, max, n, s->hist, (m->hist_mask + 1) * sizeof *s->hist);
        n = nc_region_add(out, max, n, &s->n, sizeof s->n);
    }
    return n;
}
