#include "bias.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cdf.h"
#include "vec.h"

/* Same cut-off as the CDF: such a term could never lift a frequency above the floor. */
#define NC_EXP_CUTOFF (-32.0)
/* Prior sum of squared gradients: the first steps are lr * g / sqrt(1 + g^2), not lr * sign(g). */
#define NC_BIAS_G2_PRIOR 1.0
/* The learned scale of the logits stays within these. */
#define NC_SCALE_MIN 0.25
#define NC_SCALE_MAX 4.0

struct nc_bias {
    uint32_t n;
    double lr, limit;
    double *b;
    double *g2; /* sum of squared gradients of each entry */
    double scale_lr, scale, scale_g2;
    /* The float32 arithmetic (vec.h): the same head in float. */
    float *bf, *g2f;
    float scale_f, scale_g2f;
};

static nc_bias *bias_new(uint32_t n_vocab, double lr, double limit, double scale_lr, int with_double) {
    if (!n_vocab) return NULL; /* the rates' bounds are the table's (mix.h) */
    nc_bias *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->n = n_vocab;
    b->lr = lr;
    b->limit = limit;
    b->scale_lr = scale_lr;
    b->scale = 1.0;
    if (with_double) {
        b->b = calloc(n_vocab, sizeof *b->b);
        b->g2 = calloc(n_vocab, sizeof *b->g2);
    }
    b->bf = calloc(n_vocab, sizeof *b->bf);
    b->g2f = calloc(n_vocab, sizeof *b->g2f);
    b->scale_f = 1.0f;
    if ((with_double && (!b->b || !b->g2)) || !b->bf || !b->g2f) {
        nc_bias_free(b);
        return NULL;
    }
    return b;
}

nc_bias *nc_bias_new(uint32_t n_vocab, double lr, double limit, double scale_lr) {
    return bias_new(n_vocab, lr, limit, scale_lr, 1);
}

nc_bias *nc_bias_new_f32(uint32_t n_vocab, double lr, double limit) { return bias_new(n_vocab, lr, limit, 0.0, 0); }

void nc_bias_free(nc_bias *b) {
    if (!b) return;
    free(b->b);
    free(b->g2);
    free(b->bf);
    free(b->g2f);
    free(b);
}

void nc_bias_reset(nc_bias *b) {
    if (b->b) {
        memset(b->b, 0, b->n * sizeof *b->b);
        memset(b->g2, 0, b->n * sizeof *b->g2);
    }
    b->scale = 1.0;
    b->scale_g2 = 0.0;
    memset(b->bf, 0, b->n * sizeof *b->bf);
    memset(b->g2f, 0, b->n * sizeof *b->g2f);
    b->scale_f = 1.0f;
    b->scale_g2f = 0.0f;
}

const float *nc_bias_values_f32(const nc_bias *b) { return b->bf; }

float nc_bias_scale_f32(const nc_bias *b) { return b->scale_f; }

NC_VECTORISE int nc_bias_update_f32(nc_bias *b, const float *restrict w, float inv_sum, const float *restrict logits, float inv_temp,
                    uint32_t token) {
    if (!w || token >= b->n || !logits) return NC_ERR_ARG;
    const int learn_scale = b->scale_lr > 0.0;
    const float lr = (float)b->lr, lim = (float)b->limit, one = (float)NC_BIAS_G2_PRIOR;
    float *restrict v = b->bf, *restrict g2 = b->g2f;
    /* Branch-free, so that it vectorises: where base is 0 the step is exactly 0
     * (g2 += 0, v -= 0), as arithmetic 1's skip. Every entry steps as if it were
     * not the token; the token's entry is then stepped again from its saved value. */
    const float v_token = v[token], g2_token = g2[token];
    float part[NC_F32_PARTS] = {0};
    const size_t n = b->n;
    size_t i = 0;
    for (; i + NC_F32_PARTS <= n; i += NC_F32_PARTS)
        for (size_t j = 0; j < NC_F32_PARTS; j++) {
            float g = w[i + j] * inv_sum;
            float x = logits[i + j];
            part[j] += g * ((x - x == 0.0f) ? x * inv_temp : 0.0f);
            float s = g2[i + j] + g * g;
            g2[i + j] = s;
            float y = v[i + j] - lr * g / sqrtf(one + s);
            v[i + j] = y < -lim ? -lim : y > lim ? lim : y;
        }
    for (; i < n; i++) {
        float g = w[i] * inv_sum;
        float x = logits[i];
        part[i % NC_F32_PARTS] += g * ((x - x == 0.0f) ? x * inv_temp : 0.0f);
        float s = g2[i] + g * g;
        g2[i] = s;
        float y = v[i] - lr * g / sqrtf(one + s);
        v[i] = y < -lim ? -lim : y > lim ? lim : y;
    }
    {
        float g = w[token] * inv_sum - 1.0f;
        float s = g2_token + g * g;
        g2[token] = s;
        float y = v_token - lr * g / sqrtf(one + s);
        v[token] = y < -lim ? -lim : y > lim ? lim : y;
    }
    float x = logits[token];
    if (learn_scale && x - x == 0.0f) {
        for (size_t width = NC_F32_PARTS / 2; width >= 1; width /= 2)
            for (size_t j = 0; j < width; j++) part[j] += part[j + width];
        float g = part[0] - x * inv_temp;
        b->scale_g2f += g * g;
        float y = b->scale_f - (float)b->scale_lr * g / sqrtf(one + b->scale_g2f);
        b->scale_f = y < (float)NC_SCALE_MIN ? (float)NC_SCALE_MIN : y > (float)NC_SCALE_MAX ? (float)NC_SCALE_MAX : y;
    }
    return NC_OK;
}

const double *nc_bias_values(const nc_bias *b) { return b->b; }

double nc_bias_scale(const nc_bias *b) { return b->scale; }

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
        /* scale is exactly 1 unless learned: s is then unchanged, bit for bit */
        if (bias) s = s * bias->scale + bias->b[i];
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

int nc_bias_update(nc_bias *b, const double *base, const float *logits, double inv_temp, uint32_t token) {
    if (!base || token >= b->n) return NC_ERR_ARG;
    const int learn_scale = b->scale_lr > 0.0;
    if (learn_scale && (!logits || !(inv_temp > 0.0) || inv_temp == INFINITY)) return NC_ERR_ARG;
    const double lr = b->lr, lim = b->limit;
    double *v = b->b, *g2 = b->g2;
    double mean_z = 0.0; /* E_base[z], z = logits * inv_temp, gathered in the same pass */
    for (uint32_t i = 0; i < b->n; i++) {
        /* base is 0 where the logit is not finite */
        if (learn_scale && base[i] > 0.0) mean_z += base[i] * ((double)logits[i] * inv_temp);
        double g = i == token ? base[i] - 1.0 : base[i];
        if (g == 0.0) continue; /* below the cut-off: a step of nothing */
        g2[i] += g * g;
        /* sqrt is correctly rounded by IEEE 754: as deterministic as + and *. */
        double x = v[i] - lr * g / sqrt(NC_BIAS_G2_PRIOR + g2[i]);
        v[i] = x < -lim ? -lim : x > lim ? lim : x;
    }
    /* The scale's gradient, E_base[z] - z[token], uses base, not b: the order
     * of the two steps does not matter. No step when the token's logit is not
     * finite. */
    if (learn_scale && is_finite(logits[token])) {
        double g = mean_z - (double)logits[token] * inv_temp;
        b->scale_g2 += g * g;
        double x = b->scale - b->scale_lr * g / sqrt(NC_BIAS_G2_PRIOR + b->scale_g2);
        b->scale = x < NC_SCALE_MIN ? NC_SCALE_MIN : x > NC_SCALE_MAX ? NC_SCALE_MAX : x;
    }
    return NC_OK;
}

uint32_t nc_bias_regions(nc_bias *b, nc_region *out, uint32_t max, uint32_t n) {
    if (!b->b) { /* a head of the float32 arithmetic only: its values and gradient sums */
        n = nc_region_add(out, max, n, b->bf, b->n * sizeof *b->bf);
        return nc_region_add(out, max, n, b->g2f, b->n * sizeof *b->g2f);
    }
    n = nc_region_add(out, max, n, b->b, b->n * sizeof *b->b);
    n = nc_region_add(out, max, n, b->g2, b->n * sizeof *b->g2);
    n = nc_region_add(out, max, n, &b->scale, sizeof b->scale);
    n = nc_region_add(out, max, n, &b->scale_g2, sizeof b->scale_g2);
    n = nc_region_add(out, max, n, b->bf, b->n * sizeof *b->bf);
    n = nc_region_add(out, max, n, b->g2f, b->n * sizeof *b->g2f);
    n = nc_region_add(out, max, n, &b->scale_f, sizeof b->scale_f);
    n = nc_region_add(out, max, n, &b->scale_g2f, sizeof b->scale_g2f);
    return n;
}
