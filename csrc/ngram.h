/* Token n-gram model: for each order k, the counts of the tokens that followed
 * each k-token context seen so far in the stream.
 *
 * Memory is bounded: each order has a hash table of 2^table_bits slots, two
 * ways per bucket, and each slot keeps at most `candidates` continuations.
 * Slots carry a 32-bit check of their context hash, so a colliding context is
 * told apart (and replaces the less used slot of its bucket) instead of
 * silently lending its counts. */
#ifndef NC_NGRAM_H
#define NC_NGRAM_H

#include <stdint.h>

#include "region.h"
#include "sparse.h"
#include "status.h"

#define NC_NGRAM_MAX_ORDER 8

/* Bounds: nacrith/settings.py's table (rows ngram_*), in this order. */
typedef struct {
    uint32_t min_order;
    uint32_t max_order;   /* at most NC_NGRAM_MAX_ORDER */
    uint32_t table_bits;  /* 2^table_bits slots per order */
    uint32_t candidates;  /* continuations per context, at most NC_SPARSE_MAX */
    uint32_t count_limit; /* counts of a context are halved when one reaches it (they are 16-bit) */
} nc_ngram_params;

typedef struct nc_ngram nc_ngram;

/* The tokens a stream's next prediction is conditioned on. Streams that share
 * one model's counts (lanes of a frame) each keep their own. */
typedef struct {
    uint32_t ctx[NC_NGRAM_MAX_ORDER];
    uint32_t n_ctx;
} nc_ngram_context;

/* NC_OK for parameters the tables can be made of safely: the orders within
 * the context arrays, the candidates within a prediction, the slots within an
 * allocation's size; the table's bounds for each of them (mix.h). */
int nc_ngram_check_params(const nc_ngram_params *params);
nc_ngram *nc_ngram_new(const nc_ngram_params *params);
void nc_ngram_free(nc_ngram *ng);
/* Forget every context (a new frame). */
void nc_ngram_reset(nc_ngram *ng);
/* One prediction per order, out[0] for min_order ... out[max - min] for max_order.
 * An order whose context was never seen predicts nothing (escape 1).
 * PPM method C: p = count / (total + distinct), escape = distinct / (total + distinct). */
void nc_ngram_predict(nc_ngram *ng, nc_sparse *out);
/* The highest order whose context was seen, 0 if none (valid after predict). */
uint32_t nc_ngram_found_order(const nc_ngram *ng);
/* Count `token` after the current contexts, then append it to the context. */
int nc_ngram_update(nc_ngram *ng, uint32_t token);
/* Exchange the model's current context with *c; the counts stay. The next
 * update predicts afresh. */
void nc_ngram_swap_context(nc_ngram *ng, nc_ngram_context *c);
/* The counts (not the context), appended to out from index n; the new count. */
uint32_t nc_ngram_regions(nc_ngram *ng, nc_region *out, uint32_t max, uint32_t n);

#endif
