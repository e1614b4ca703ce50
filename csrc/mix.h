/* The ensemble: the language model (corrected by the bias head) and the cheap
 * models (n-gram orders, match model) mixed into one distribution, refined by
 * an APM stage, quantised to the CDF and coded, all in one call per symbol.
 *
 * Mixer. Every cheap model is a full distribution, p_i = sparse_i + escape_i *
 * base (sparse.h), so the linear mixture sum_i w_i p_i is A * base + the few
 * named candidates. The weights w = softmax(v[set]) come from one of several
 * weight sets chosen by a small context (mode, highest n-gram order seen,
 * match length), and learn by exponentiated gradient on the coding loss,
 * v_i += lr * (p_i(token) / p(token) - 1), clamped to [-limit, limit]: a model
 * that starts predicting well regains weight within tokens, however long it
 * was wrong before (a cumulative exponential-weights mixer would need as many
 * tokens as it had lost for).
 *
 * Context heads (bias_contexts > 0, with the bias head, in NC_ARITH_FLOAT32):
 * heads of the same kind keyed on the stream's previous token modulo their
 * number, min(bias_contexts, max(1, NC_BIAS_CONTEXT_ENTRIES / n_vocab)) so
 * that they take at most 64 MB; the base uses the sum of the bias head's
 * values and its context's head's, and both learn from each model step. What
 * a document does after a given token (a name after "Mr", a line break after
 * a rhyme) is learned where one head for every context would blur it
 * (docs/measurements.md, "Ablation": more heads gain a little more, and a
 * head per first-seen token, or keyed on the last two tokens, did worse).
 *
 * APM (secondary estimation): the probability of one candidate token (the
 * match model's prediction, else the mixture's top token) is refined by an
 * interpolated table indexed by the same small context and the stretched
 * probability, learned from how often such candidates were right; the other
 * tokens share the rest in proportion.
 *
 * Confidence skip: after each token the ensemble decides, from decoded state
 * only, whether the next token needs the language model. Two rules, either
 * of which skips it:
 *  - agreement: the match model is at least skip_min_len tokens long, its
 *    learned hit rate for that length is at least skip_confidence, and (when
 *    skip_agree > 0 and the n-gram is on) the n-gram's highest order gives
 *    the match's token a probability of at least skip_agree. Two models
 *    agreeing are right far more often than one alone
 *    (docs/measurements.md, "Ensemble": skip by agreement).
 *  - solo (when skip_solo_min_len > 0): the match alone is at least
 *    skip_solo_min_len tokens long with a hit rate of at least
 *    skip_solo_confidence. A long match that is almost never wrong is a
 *    repeat of old text, which the n-gram's bounded counts may not confirm.
 * A skipped token is mixed over a fallback base (the frame's adaptive
 * unigram counts) instead of the model's.
 *
 * Arithmetics. Every float operation is in a fixed order, so encoder and
 * decoder compute bit-identical CDFs, in one of two arithmetics, which the
 * file names (docs/format.md, CODING):
 *  - NC_ARITH_EXACT_DOUBLE (1): doubles with our own exp/log (cdf.h), the
 *    cumulative CDF of cdf.c; files before CODING existed (mix_double.c,
 *    frozen: it decodes them);
 *  - NC_ARITH_FLOAT32 (2): the dense work over the vocabulary in float,
 *    vectorised with the same bits at any width (vec.h; mix_float32.c).
 * What they share (the experts, the weight sets, the APM, the learning) is
 * written once, in mix.c. */
#ifndef NC_MIX_H
#define NC_MIX_H

#include <stdint.h>

#include "bias.h"
#include "coder.h"
#include "match.h"
#include "ngram.h"

#define NC_ENS_NGRAM 1u
#define NC_ENS_MATCH 2u
#define NC_ENS_BIAS 4u
#define NC_ENS_SKIP 8u /* needs NC_ENS_MATCH */
#define NC_ENS_APM 16u
#define NC_ENS_ALL 31u

#define NC_ARITH_EXACT_DOUBLE 1u
#define NC_ARITH_FLOAT32 2u

/* Most entries of all the context heads together (bias_contexts x n_vocab). */
#define NC_BIAS_CONTEXT_ENTRIES (1u << 23)

typedef struct {
    uint32_t flags;
    /* The hyperparameters, one per row of nacrith/settings.py's table (which
     * gives their bounds and the header's defaults), in its order: cffi checks
     * this struct against the declaration csrc/build_ffi.py makes from it. */
    nc_ngram_params ngram;
    nc_match_params match;
    double bias_lr, bias_limit;
    double bias_scale_lr;         /* the bias head's learned scale of the logits; 0: none */
    uint32_t bias_contexts;       /* context heads besides the bias head (at most, see below); 0: none */
    double bias_context_lr;       /* their learning rate */
    double mixer_lr, mixer_limit;
    double apm_rate;
    uint32_t skip_min_len;        /* >= match.min_len */
    double skip_confidence;
    uint32_t skip_warmup;         /* tokens of a frame before the first skip */
    double skip_agree;            /* least n-gram probability of the match's token; 0: not asked */
    uint32_t skip_solo_min_len;   /* 0: no solo rule, else >= match.min_len */
    double skip_solo_confidence;
} nc_ens_params;

typedef struct nc_ens nc_ens;

/* NC_OK for parameters an ensemble can be made of safely: the switches known,
 * the skip with the match model it reads, and each part's own check. Only
 * what memory safety needs is checked in C (an array's bound, an allocation's
 * size: the rows marked c_checked); the bounds of every hyperparameter are
 * the Python table's, which every value from a user or a file passes first.
 * These few checks are written by hand next to what they guard, so the C
 * reads and builds alone, and tests/test_ensemble_table.py holds them to the
 * table (just inside the bounds accepted, just outside refused, no other
 * bound restated), rather than generated from the table at build time: a
 * generator would put six comparisons behind a step of the build. */
int nc_ens_check_params(const nc_ens_params *params);
/* An ensemble shared by n_lanes streams (the lanes of a frame), in arithmetic
 * `arith` (NC_ARITH_*). Every lane keeps its own n-gram context, match and
 * skip decision; the counts, the match index, the bias head, the mixer and
 * the APM learn from every lane. The calls below act on the current lane
 * (nc_ens_set_lane; lane 0 after reset). */
nc_ens *nc_ens_new_lanes(const nc_ens_params *params, uint32_t n_vocab, uint32_t n_extra, double inv_temp,
                         uint32_t n_lanes, uint32_t arith);
int nc_ens_set_lane(nc_ens *e, uint32_t lane);
void nc_ens_free(nc_ens *e);
/* A new frame: every model, weight and table back to its initial state. */
void nc_ens_reset(nc_ens *e);
/* Whether the next symbol must be coded with the language model's logits. */
int nc_ens_needs_llm(const nc_ens *e);
/* Code one symbol (a token < n_vocab, or an escape above). `logits` must be
 * given exactly when nc_ens_needs_llm() says so, and NULL otherwise.
 * *freq_out: the coded symbol's frequency; *prob_out: its unquantised probability. */
int nc_ens_encode(nc_ens *e, nc_encoder *enc, const float *logits, uint32_t sym, uint32_t *freq_out,
                  double *prob_out);
int nc_ens_decode(nc_ens *e, nc_decoder *dec, const float *logits, uint32_t *sym_out, uint32_t *freq_out);
/* What the ensemble has learned, as memory regions in a fixed order: the n-gram
 * counts, the match index, hit rates and histories, the bias head, the mixer's
 * weights, the APM, the fallback counts and the tokens seen. Not what belongs
 * to a stream's place in its text (n-gram contexts, current matches, skip
 * decisions), which start afresh. A dictionary saves these bytes after
 * training and loads them into a reset ensemble of the same settings, vocabulary,
 * arithmetic and lanes (nacrith/dictionary.py). Writes at most max regions to
 * out; returns how many there are. */
uint32_t nc_ens_regions(nc_ens *e, nc_region *out, uint32_t max);
/* Count a sample's tokens in the n-gram, match and fallback models without
 * coding them: statistics a dictionary gathers from samples it has no time to
 * code with the language model. The sample starts from an empty n-gram context,
 * which stays empty after it; escapes (>= n_vocab) are skipped, as in coding. */
int nc_ens_observe(nc_ens *e, const uint32_t *tokens, uint32_t n);

#endif
