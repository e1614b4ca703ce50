/* The host side of a neural frame, one call per step for all its streams.
 *
 * A frame's symbols are split into streams ("lanes"), coded in lockstep: each
 * step codes the next symbol of every unfinished stream, in stream order
 * (softmax/CDF, mixing, coding, learning), then plans what the language
 * model must evaluate before the next step: for each stream, the tokens it
 * coded since it last fed the model, at once when its next symbol needs the
 * model's logits, or when `batch` of them are waiting (tokens the ensemble
 * coded without the model, confidence skip). The plan is written straight
 * into the caller's llama_batch arrays, so Python runs per step, not per
 * token, and encoder and decoder issue the same evaluations.
 *
 * After an evaluation the caller passes the model's outputs: one row of
 * n_vocab floats per token that asked for logits, in batch order (llama.cpp's
 * llama_get_logits). A stream that needs logits it did not get this step (it
 * coded an escape, which the model never sees) keeps a copy of its last row.
 *
 * The ensemble is shared by the streams (one set of counts, match index, bias
 * head, mixer and APM, updated stream by stream in order within a step) or,
 * as in files before the CODING parameter, one per stream. */
#ifndef NC_LANES_H
#define NC_LANES_H

#include <stddef.h>
#include <stdint.h>

#include "mix.h"

/* Where the plan goes: the arrays of a llama_batch of at least n_lanes * batch tokens. */
typedef struct {
    int32_t *token;
    int32_t *pos;
    int32_t *n_seq_id;
    int32_t **seq_id;
    int8_t *logits;
} nc_batch;

typedef struct {
    uint32_t n_lanes;     /* streams of the frame, 1..256 */
    uint32_t n_vocab, n_extra;
    double inv_temp;
    uint32_t arith;       /* NC_ARITH_EXACT_DOUBLE (cdf.h) or NC_ARITH_FLOAT32 (vec.h) */
    const nc_ens_params *ensemble; /* NULL: the language model alone */
    int shared;           /* one ensemble for all streams */
    uint32_t batch;       /* tokens one stream feeds the model at once, <= slide */
    uint32_t context, slide; /* each stream's window, in cells, start token included */
    int32_t start_token;
    /* A primed window (a dictionary's): every stream's window already holds
     * `primed` cells (the start token and the priming text but its last token,
     * evaluated by the caller), and the first plan feeds first_token at that
     * position (primed < context). 0: the window is empty and the first plan
     * feeds start_token. */
    uint32_t primed;
    int32_t first_token;
} nc_lanes_config;

typedef struct {
    uint64_t symbols, escapes, skipped;
    double coded_bits, model_bits;
} nc_lanes_stats;

typedef struct nc_lanes nc_lanes;

nc_lanes *nc_lanes_new(const nc_lanes_config *config);
void nc_lanes_free(nc_lanes *ln);

/* Start encoding n_lanes streams: stream k is symbols[bounds[k] .. bounds[k + 1]).
 * The symbols are copied. The first plan (every stream's start token) goes into b. */
int nc_lanes_begin_encode(nc_lanes *ln, const uint32_t *symbols, const uint64_t *bounds, const nc_batch *b,
                          uint32_t *n_tokens_out);
/* Start decoding: stream k has counts[k] symbols coded in payloads[k] (copied). */
int nc_lanes_begin_decode(nc_lanes *ln, const uint8_t *const *payloads, const size_t *lens,
                          const uint64_t *counts, const nc_batch *b, uint32_t *n_tokens_out);
/* One step, given the outputs of evaluating the last plan. Writes the next plan
 * into b (*n_tokens_out tokens; 0 when nothing is to be evaluated) and the
 * streams whose window must slide by `slide` cells before it is evaluated
 * (slides_out, room for n_lanes; *n_slides_out of them). *done_out: every
 * symbol of every stream is coded. */
int nc_lanes_step(nc_lanes *ln, const float *outputs, uint32_t *n_tokens_out, uint32_t *slides_out,
                  uint32_t *n_slides_out, int *done_out);
/* Encoding: flush the coders; then nc_lanes_payload gives stream k's bytes. */
int nc_lanes_finish(nc_lanes *ln);
int nc_lanes_payload(const nc_lanes *ln, uint32_t lane, const uint8_t **data_out, size_t *len_out);
/* Decoding: every payload consumed exactly; the symbols, streams concatenated. */
int nc_lanes_check_end(const nc_lanes *ln);
const uint32_t *nc_lanes_symbols(const nc_lanes *ln);
void nc_lanes_get_stats(const nc_lanes *ln, nc_lanes_stats *out);
/* The ensemble of a frame of one stream, or the shared one; NULL if none (a
 * dictionary's state is loaded into it after begin, before the first step). */
nc_ens *nc_lanes_ensemble(nc_lanes *ln);

#endif
