/* The prediction of a cheap model, shared by the n-gram, match and mixer code.
 *
 * A cheap model names a few candidate tokens and leaves the rest of the
 * probability mass, `escape`, to the base distribution (the language model,
 * or the fallback when the model is skipped):
 *
 *     p(t) = p[i] (for t == tok[i]) + escape * base(t),   sum(p) + escape == 1
 *
 * So no mass is wasted on the tens of thousands of tokens a context has never
 * been followed by, and every model is a proper distribution over the whole
 * vocabulary without touching each of its entries.
 */
#ifndef NC_SPARSE_H
#define NC_SPARSE_H

#include <stdint.h>

/* Most candidates one prediction can name. */
#define NC_SPARSE_MAX 16

typedef struct {
    uint32_t n;
    uint32_t tok[NC_SPARSE_MAX];
    double p[NC_SPARSE_MAX];
    double escape;
} nc_sparse;

/* The sparse part of a prediction for `token`: p[i] if named, else 0. */
static inline double nc_sparse_get(const nc_sparse *s, uint32_t token) {
    for (uint32_t i = 0; i < s->n; i++)
        if (s->tok[i] == token) return s->p[i];
    return 0.0;
}

static inline void nc_sparse_clear(nc_sparse *s) {
    s->n = 0;
    s->escape = 1.0;
}

#endif
