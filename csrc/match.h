/* Match model (LZP style): finds the latest earlier occurrence of the last
 * `min_len` tokens and predicts the token that followed it, for as long as
 * the prediction keeps coming true. It sees the whole frame (within a ring of
 * 2^history_bits tokens), so it catches repeats far older than the language
 * model's window.
 *
 * Its confidence is learned, not fixed: an adaptive hit rate per match-length
 * bucket, updated after every prediction. Candidate positions come from a
 * hash table and are verified against the history, so a hash collision is
 * never taken for a match. */
#ifndef NC_MATCH_H
#define NC_MATCH_H

#include <stdint.h>

#include "region.h"
#include "sparse.h"
#include "status.h"

/* Match lengths are counted up to this (a longer match is as good). */
#define NC_MATCH_MAX_LEN 65535
#define NC_MATCH_BUCKETS 24
#define NC_MATCH_MAX_LANES 256

/* Bounds: nacrith/settings.py's table (rows match_*), in this order. */
typedef struct {
    uint32_t min_len;      /* tokens hashed to find a candidate */
    uint32_t hash_bits;    /* 2^hash_bits entries in the hash table */
    uint32_t history_bits; /* 2^history_bits tokens remembered */
    uint32_t rate_limit;   /* the hit rate averages over at most this many events */
} nc_match_params;

typedef struct nc_match nc_match;

/* NC_OK for parameters the tables can be made of safely: their sizes within
 * what an allocation can hold; the table's bounds for them (mix.h). */
int nc_match_check_params(const nc_match_params *params);
nc_match *nc_match_new(const nc_match_params *params);
/* A model shared by n_lanes streams (lanes of a frame): one hash table and one
 * set of hit rates, a history per stream of 2^history_bits / n_lanes tokens
 * (at least 2^10). A stream's match may follow any stream's history. The
 * calls below act on the current stream (nc_match_set_lane; 0 at first). */
nc_match *nc_match_new_lanes(const nc_match_params *params, uint32_t n_lanes);
int nc_match_set_lane(nc_match *m, uint32_t lane);
void nc_match_free(nc_match *m);
void nc_match_reset(nc_match *m);
/* The index, the hit rates and every stream's history (not its current match),
 * appended to out from index n; the new count. */
uint32_t nc_match_regions(nc_match *m, nc_region *out, uint32_t max, uint32_t n);
/* The predicted token with the learned hit rate of the current length bucket,
 * the rest of the mass escaping to the base distribution; nothing when no match. */
void nc_match_predict(nc_match *m, nc_sparse *out);
/* Current match length in tokens (0: no match) and its confidence bucket. */
uint32_t nc_match_length(const nc_match *m);
uint32_t nc_match_bucket(const nc_match *m);
/* The learned hit rate of a bucket. */
double nc_match_confidence(const nc_match *m, uint32_t bucket);
/* Learn from `token` (was the prediction right?), append it, find the next match. */
int nc_match_update(nc_match *m, uint32_t token);

#endif
