#include "bias.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cdf.h"

/* Same cut-off as the CDF: such a term could never lift a frequency above the floor. */
#define NC_EXP_CUTOFF (-32.0)
/* Prior sum of squared gradients: the first steps are lr * g / sqrt(1 + g^2), not lr * sign(g). */
#define NC_BIAS_G2_PRIOR 1.0

struct nc_bias {
    uint32_t n;
    double lr, limit;
    double *b;
    double *g2; /* sum of squared gradients of each entry */
};

nc_bias *nc_bias_new(uint32_t n_vocab, double lr, double limit) {
    if (!n_vocab || !(lr > 0.0 && lr <= 4.0) || !(limit > 0.0 && limit <= 64.0)) return NULL;
    nc_bias *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->n = n_vocab;
    b->lr = lr;
    b->limit = limit;
    b->b = calloc(n_vocab, sizeof *b->b);
    b->g2 = calloc(n_vocab, sizeof *b->g2);
    if (!b->b || !b->g2) {
        nc_bias_free(b);
        return NULL;
    }
    return b;
}

void nc_bias_free(nc_bias *b) {
    if (!b) return;
    free(b->b);
    free(b->g2);
    free(b);
}

void nc_bias_reset(nc_bias *b) {
    memset(b->b, 0, b->n * sizeof *b->b);
    memset(b->g2, 0, b->n * sizeof *b->g2);
}

const double *nc_bias_values(const nc_bias *b) { return b->b; }

static int is_finite(float v) { return v == v && v != INFINITY && v != -INFINITY; }

int nc_softmax(const float *logits, uint32_t n, double inv_temp, const nc_bias *bias, double *base,
               uint32_t *top) {
    if (!logits || !base || !n || !(inv_temp > 0.0) || inv_temp == INFINITY) return NC_ERR_ARG;
    if (bias && bias->n != n) return NC_ERR_ARG;
    /* Pass 1: scores into base, NaN marking the non-finite ones; the first top. */
    int any = 0;
    double max = 0.0;
    uint32_t arg = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!is_finite(logits[i])) {
            base[i] = NAN;
            continue;
        }
        double s = (double)logits[i] * inv_temp;
        if (bias) s += bias->b[i];
        base[i] = s;
        if (!any || s > max) {
            max = s;
            arg = i;
            any = 1;
        }
    }
    if (!any) { /* nothing finite: uniform */
        for (uint32_t i = 0; i < n; i++) base[i] = 1.0 / n;
        if (top) *top = 0;
        return NC_OK;
    }
    /* Pass 2: weights, summed in index order. */
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double a = base[i] - max; /* NaN stays NaN and fails the test below */
        double w = (a >= NC_EXP_CUTOFF) ? nc_exp(a) : 0.0;
        base[i] = w;
        sum += w;
    }
    double inv = 1.0 / sum;
    for (uint32_t i = 0; i < n; i++) base[i] *= inv;
    if (top) *top = arg;
    return NC_OK;
}

int nc_bias_update(nc_bias *b, const double *base, uint32_t token) {
    if (!base || token >= b->n) return NC_ERR_ARG;
    const double lr = b->lr, lim = b->limit;
    double *v = b->b, *g2 = b->g2;
    for (uint32_t i = 0; i < b->n; i++) {
        double g = i == token ? base[i] - 1.0 : base[i];
        if (g == 0.0) continue; /* below the cut-off: a step of nothing */
        g2[i] += g * g;
        /* sqrt is correctly rounded by IEEE 754: as deterministic as + and *. */
        double x = v[i] - lr * g / sqrt(NC_BIAS_G2_PRIOR + g2[i]);
        v[i] = x < -lim ? -lim : x > lim ? lim : x;
    }
    return NC_OK;
}
