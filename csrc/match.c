#include "match.h"

#include <stdlib.h>
#include <string.h>

/* Verifying further back than the last length bucket starts changes nothing. */
#define NC_MATCH_VERIFY 2048

struct nc_match {
    nc_match_params p;
    uint32_t *hist; /* ring of 2^history_bits tokens, by absolute position */
    uint64_t hist_mask;
    uint64_t n;       /* tokens seen */
    uint64_t *table;  /* context hash -> absolute position after it, +1 (0: empty) */
    uint64_t table_mask;
    uint64_t ptr;     /* position of the predicted token (valid when len > 0) */
    uint32_t len;
    double hit[NC_MATCH_BUCKETS];
    uint32_t events[NC_MATCH_BUCKETS];
};

int nc_match_check_params(const nc_match_params *p) {
    if (!p || p->min_len < 1 || p->min_len > 64) return NC_ERR_ARG;
    if (p->hash_bits < 8 || p->hash_bits > 26) return NC_ERR_ARG;
    if (p->history_bits < 10 || p->history_bits > 30) return NC_ERR_ARG;
    if (p->rate_limit < 2 || p->rate_limit > 65535) return NC_ERR_ARG;
    return NC_OK;
}

nc_match *nc_match_new(const nc_match_params *params) {
    if (nc_match_check_params(params) != NC_OK) return NULL;
    nc_match *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->p = *params;
    m->hist_mask = ((uint64_t)1 << params->history_bits) - 1;
    m->table_mask = ((uint64_t)1 << params->hash_bits) - 1;
    m->hist = malloc((m->hist_mask + 1) * sizeof *m->hist);
    m->table = malloc((m->table_mask + 1) * sizeof *m->table);
    if (!m->hist || !m->table) {
        nc_match_free(m);
        return NULL;
    }
    nc_match_reset(m);
    return m;
}

void nc_match_free(nc_match *m) {
    if (!m) return;
    free(m->hist);
    free(m->table);
    free(m);
}

void nc_match_reset(nc_match *m) {
    memset(m->table, 0, (m->table_mask + 1) * sizeof *m->table);
    m->n = 0;
    m->len = 0;
    m->ptr = 0;
    /* Prior: an even chance, trusted for one event; the rate is learned fast. */
    for (uint32_t b = 0; b < NC_MATCH_BUCKETS; b++) {
        m->hit[b] = 0.5;
        m->events[b] = 0;
    }
}

/* Lengths 1..15 have a bucket each; then one per doubling up to 2^(23-16+4). */
static uint32_t bucket_of(uint32_t len) {
    if (len < 16) return len;
    uint32_t b = 16;
    for (uint32_t l = len >> 5; l && b < NC_MATCH_BUCKETS - 1; l >>= 1) b++;
    return b;
}

uint32_t nc_match_length(const nc_match *m) { return m->len; }
uint32_t nc_match_bucket(const nc_match *m) { return bucket_of(m->len); }

double nc_match_confidence(const nc_match *m, uint32_t bucket) {
    return bucket < NC_MATCH_BUCKETS ? m->hit[bucket] : 0.0;
}

void nc_match_predict(nc_match *m, nc_sparse *out) {
    nc_sparse_clear(out);
    if (!m->len) return;
    double p = m->hit[bucket_of(m->len)];
    out->n = 1;
    out->tok[0] = m->hist[m->ptr & m->hist_mask];
    out->p[0] = p;
    out->escape = 1.0 - p;
}

static uint64_t hash_last(const nc_match *m) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (uint64_t i = m->n - m->p.min_len; i < m->n; i++) {
        h ^= (uint64_t)m->hist[i & m->hist_mask] + 1;
        h *= 0x100000001B3ull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static int in_history(const nc_match *m, uint64_t pos) { return pos < m->n && m->n - pos <= m->hist_mask + 1; }

int nc_match_update(nc_match *m, uint32_t token) {
    if (m->len) {
        uint32_t b = bucket_of(m->len);
        int right = m->hist[m->ptr & m->hist_mask] == token;
        if (m->events[b] < m->p.rate_limit) m->events[b]++;
        m->hit[b] += ((right ? 1.0 : 0.0) - m->hit[b]) / ((double)m->events[b] + 0.5);
        if (right) {
            if (m->len < NC_MATCH_MAX_LEN) m->len++;
            m->ptr++;
        } else {
            m->len = 0;
        }
    }
    m->hist[m->n & m->hist_mask] = token;
    m->n++;
    if (m->len && !in_history(m, m->ptr)) m->len = 0; /* fell out of the ring */
    if (m->n < m->p.min_len) return NC_OK;
    uint64_t slot = hash_last(m) & m->table_mask;
    uint64_t cand = m->table[slot];
    m->table[slot] = m->n + 1;
    if (m->len || !cand) return NC_OK;
    uint64_t pos = cand - 1; /* the token that followed the earlier occurrence */
    if (!in_history(m, pos)) return NC_OK;
    /* Verify backwards: a hash collision must not pass for a match. */
    uint32_t len = 0;
    while (len < NC_MATCH_VERIFY && len < pos && in_history(m, pos - len - 1) &&
           m->hist[(pos - len - 1) & m->hist_mask] == m->hist[(m->n - len - 1) & m->hist_mask])
        len++;
    if (len >= m->p.min_len) {
        m->len = len;
        m->ptr = pos;
    }
    return NC_OK;
}
