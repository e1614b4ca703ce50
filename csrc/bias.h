/* Online bias head: a per-document correction of the language model in log
 * space, base = softmax(logits / T + b), learned by one gradient step on
 * -log base(token) after each token, g = base - onehot(token), with a step
 * size per entry (AdaGrad): G += g^2, b -= lr * g / sqrt(1 + G).
 * It raises the words this document uses more than the model expects
 * (names, spellings, markup) wherever the model finds them plausible.
 *
 * Why AdaGrad: the useful correction is the document's long-run token
 * statistics (forgetting them was measured to cost), which a fixed step
 * either learns too slowly (small lr) or keeps too noisy (large lr); a step
 * that shrinks with each entry's own gradient history does both
 * (docs/measurements.md, "Ensemble").
 *
 * Optionally (scale_lr > 0) it also learns one scale of the logits,
 * base = softmax(scale * logits / T + b), by the same kind of step on
 * d(-log base(token))/d scale = E_base[logits / T] - logits[token] / T,
 * starting at 1 and kept within [1/4, 4]: a per-document temperature. The
 * model is over-confident on some texts (docs/measurements.md, "Ensemble"),
 * and no per-token bias can flatten every distribution at once. */
#ifndef NC_BIAS_H
#define NC_BIAS_H

#include <stdint.h>

#include "region.h"
#include "status.h"

typedef struct nc_bias nc_bias;

/* Every b stays within [-limit, limit]; scale_lr 0: the scale stays 1. The
 * bounds of lr, limit and scale_lr are nacrith/settings.py's (bias_*). */
nc_bias *nc_bias_new(uint32_t n_vocab, double lr, double limit, double scale_lr);
/* A head of the float32 arithmetic only (its float values, no scale): a third of the
 * memory, for the ensemble's many context heads. nc_bias_values, nc_softmax
 * and nc_bias_update must not be given it. */
nc_bias *nc_bias_new_f32(uint32_t n_vocab, double lr, double limit);
void nc_bias_free(nc_bias *b);
void nc_bias_reset(nc_bias *b);
/* The head's values, scales and gradient sums, appended to out from index n; the new count. */
uint32_t nc_bias_regions(nc_bias *b, nc_region *out, uint32_t max, uint32_t n);
const double *nc_bias_values(const nc_bias *b);
double nc_bias_scale(const nc_bias *b);
/* base[i] = softmax(logits * inv_temp * scale + bias)[i] over n entries; bias may be
 * NULL (none). Non-finite logits get probability 0; terms below e^-32 of the
 * top one are 0. Returns the index of the first highest term via *top. */
int nc_softmax(const float *logits, uint32_t n, double inv_temp, const nc_bias *bias, double *base,
               uint32_t *top);
/* One gradient step towards `token` given the distribution base it produced
 * from these logits (used only to learn the scale). */
int nc_bias_update(nc_bias *b, const double *base, const float *logits, double inv_temp, uint32_t token);

/* The float32 arithmetic (NC_ARITH_FLOAT32, vec.h): the same head kept in float. The bias values and the
 * scale to apply (s = logits * inv_temp * scale + bias), and one step given the
 * unnormalised weights w (base = w * inv_sum) they produced from these logits. */
const float *nc_bias_values_f32(const nc_bias *b);
float nc_bias_scale_f32(const nc_bias *b);
int nc_bias_update_f32(nc_bias *b, const float *w, float inv_sum, const float *logits, float inv_temp,
                    uint32_t token);

#endif
