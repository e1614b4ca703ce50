/* Binary arithmetic coder in the Witten-Neal-Cleary style, with 32-bit
 * registers and underflow ("pending bit") handling.
 *
 * Why bitwise and not a byte-wise range coder: the CDF total is 2^24, and a
 * byte-wise coder with a 32-bit range renormalises only down to 2^24, where
 * range / total can be 1 and the rounding loss is large. Here the interval
 * width stays above 2^30 after every renormalisation, so each symbol of
 * frequency f gets at least 64 * f units and the coding loss is ~V / 2^30 bits
 * per symbol.
 *
 * Invariants (encoder and decoder alike), after every renormalisation:
 *   low <= high, high - low + 1 > 2^30, and low < 2^31 <= high unless a
 *   pending (underflow) step applies.
 * The decoder additionally keeps low <= value <= high for any input bits, so
 * garbage decodes to garbage symbols, never out of bounds.
 */
#include "coder.h"

#include <stdlib.h>
#include <string.h>

#define HALF (1ull << 31)
#define QUARTER (1ull << 30)
#define TOP ((1ull << 32) - 1)

int nc_abi_version(void) { return NC_ABI_VERSION; }

struct nc_encoder {
    uint64_t low, high;
    uint64_t pending; /* underflow bits waiting for the next decided bit */
    uint8_t *buf;
    size_t len, cap;
    uint32_t bitbuf; /* bits of the byte being assembled */
    int nbits;
    int finished;
    int failed;
};

nc_encoder *nc_encoder_new(void) {
    nc_encoder *enc = calloc(1, sizeof *enc);
    if (!enc) return NULL;
    enc->high = TOP;
    return enc;
}

void nc_encoder_free(nc_encoder *enc) {
    if (!enc) return;
    free(enc->buf);
    free(enc);
}

static int put_bit(nc_encoder *enc, unsigned bit) {
    enc->bitbuf = (enc->bitbuf << 1) | bit;
    if (++enc->nbits < 8) return NC_OK;
    if (enc->len == enc->cap) {
        size_t cap = enc->cap ? enc->cap * 2 : 4096;
        uint8_t *buf = realloc(enc->buf, cap);
        if (!buf) return NC_ERR_NOMEM;
        enc->buf = buf;
        enc->cap = cap;
    }
    enc->buf[enc->len++] = (uint8_t)enc->bitbuf;
    enc->bitbuf = 0;
    enc->nbits = 0;
    return NC_OK;
}

/* Emit a decided bit followed by the pending opposite bits. */
static int put_bits_with_pending(nc_encoder *enc, unsigned bit) {
    int st = put_bit(enc, bit);
    for (; st == NC_OK && enc->pending > 0; enc->pending--) st = put_bit(enc, !bit);
    return st;
}

static int valid_interval(const uint32_t *cdf, uint32_t nsym, uint32_t sym) {
    return cdf && nsym > 0 && sym < nsym && cdf[0] == 0 && cdf[nsym] == NC_CDF_TOTAL && cdf[sym] < cdf[sym + 1];
}

int nc_encoder_encode(nc_encoder *enc, const uint32_t *cdf, uint32_t nsym, uint32_t sym) {
    if (!enc || enc->failed) return NC_ERR_STATE;
    if (enc->finished) return NC_ERR_STATE;
    if (!valid_interval(cdf, nsym, sym)) return NC_ERR_ARG;
    return nc_encoder_encode_range(enc, cdf[sym], cdf[sym + 1] - cdf[sym]);
}

int nc_encoder_encode_range(nc_encoder *enc, uint32_t low, uint32_t freq) {
    if (!enc || enc->failed) return NC_ERR_STATE;
    if (enc->finished) return NC_ERR_STATE;
    if (freq == 0 || (uint64_t)low + freq > NC_CDF_TOTAL) return NC_ERR_ARG;

    uint64_t range = enc->high - enc->low + 1;
    enc->high = enc->low + ((range * (low + freq)) >> NC_CDF_BITS) - 1;
    enc->low = enc->low + ((range * low) >> NC_CDF_BITS);

    for (;;) {
        int st = NC_OK;
        if (enc->high < HALF) {
            st = put_bits_with_pending(enc, 0);
        } else if (enc->low >= HALF) {
            st = put_bits_with_pending(enc, 1);
            enc->low -= HALF;
            enc->high -= HALF;
        } else if (enc->low >= QUARTER && enc->high < 3 * QUARTER) {
            enc->pending++;
            enc->low -= QUARTER;
            enc->high -= QUARTER;
        } else {
            break;
        }
        if (st != NC_OK) {
            enc->failed = 1;
            return st;
        }
        enc->low <<= 1;
        enc->high = (enc->high << 1) | 1;
    }
    return NC_OK;
}

int nc_encoder_finish(nc_encoder *enc) {
    if (!enc || enc->failed || enc->finished) return NC_ERR_STATE;
    /* Two more bits pin a point inside [low, high]: the decoder reads zeros
     * past the end, and 01 / 10 followed by zeros lies inside the interval
     * because high - low + 1 > 2^30 and low < 2^31 <= high. */
    enc->pending++;
    int st = put_bits_with_pending(enc, enc->low >= QUARTER);
    while (st == NC_OK && enc->nbits != 0) st = put_bit(enc, 0);
    if (st != NC_OK) {
        enc->failed = 1;
        return st;
    }
    enc->finished = 1;
    return NC_OK;
}

size_t nc_encoder_size(const nc_encoder *enc) { return enc ? enc->len : 0; }

const uint8_t *nc_encoder_data(const nc_encoder *enc) { return enc ? enc->buf : NULL; }

struct nc_decoder {
    uint64_t low, high, value;
    uint8_t *buf;
    size_t len;
    uint64_t bitpos; /* bits consumed, including the 32 preloaded ones */
};

static unsigned get_bit(nc_decoder *dec) {
    uint64_t pos = dec->bitpos++;
    size_t byte = (size_t)(pos >> 3);
    if (byte >= dec->len) return 0;
    return (dec->buf[byte] >> (7 - (pos & 7))) & 1u;
}

nc_decoder *nc_decoder_new(const uint8_t *data, size_t len) {
    nc_decoder *dec = calloc(1, sizeof *dec);
    if (!dec) return NULL;
    if (len > 0) {
        dec->buf = malloc(len);
        if (!dec->buf) {
            free(dec);
            return NULL;
        }
        memcpy(dec->buf, data, len);
    }
    dec->len = len;
    dec->high = TOP;
    for (int i = 0; i < 32; i++) dec->value = (dec->value << 1) | get_bit(dec);
    return dec;
}

void nc_decoder_free(nc_decoder *dec) {
    if (!dec) return;
    free(dec->buf);
    free(dec);
}

/* Renormalisation shifts S of a valid stream satisfy 8*len - 10 < S <= 8*len - 2
 * (the encoder writes S + 2 bits, padded to a byte). */
static uint64_t shifts(const nc_decoder *dec) { return dec->bitpos - 32; }

int nc_decoder_target(const nc_decoder *dec, uint32_t *target_out) {
    if (!dec || !target_out) return NC_ERR_ARG;
    if (shifts(dec) > 8 * (uint64_t)dec->len) return NC_ERR_CORRUPT;
    uint64_t range = dec->high - dec->low + 1;
    /* < NC_CDF_TOTAL by the invariant low <= value <= high */
    *target_out = (uint32_t)((((dec->value - dec->low + 1) << NC_CDF_BITS) - 1) / range);
    return NC_OK;
}

int nc_decoder_consume(nc_decoder *dec, uint32_t low, uint32_t freq) {
    if (!dec || freq == 0 || (uint64_t)low + freq > NC_CDF_TOTAL) return NC_ERR_ARG;
    uint64_t range = dec->high - dec->low + 1;
    dec->high = dec->low + ((range * (low + freq)) >> NC_CDF_BITS) - 1;
    dec->low = dec->low + ((range * low) >> NC_CDF_BITS);
    for (;;) {
        if (dec->high < HALF) {
            /* nothing to subtract */
        } else if (dec->low >= HALF) {
            dec->low -= HALF;
            dec->high -= HALF;
            dec->value -= HALF;
        } else if (dec->low >= QUARTER && dec->high < 3 * QUARTER) {
            dec->low -= QUARTER;
            dec->high -= QUARTER;
            dec->value -= QUARTER;
        } else {
            break;
        }
        dec->low <<= 1;
        dec->high = (dec->high << 1) | 1;
        dec->value = (dec->value << 1) | get_bit(dec);
    }
    return NC_OK;
}

int nc_decoder_decode(nc_decoder *dec, const uint32_t *cdf, uint32_t nsym, uint32_t *sym_out) {
    if (!dec || !cdf || !sym_out || nsym == 0 || cdf[0] != 0 || cdf[nsym] != NC_CDF_TOTAL)
        return NC_ERR_ARG;
    uint32_t target;
    int st = nc_decoder_target(dec, &target);
    if (st != NC_OK) return st;
    /* Largest sym with cdf[sym] <= target. */
    uint32_t lo = 0, hi = nsym;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] <= target) lo = mid;
        else hi = mid;
    }
    if (cdf[lo] >= cdf[lo + 1]) return NC_ERR_ARG;
    *sym_out = lo;
    return nc_decoder_consume(dec, cdf[lo], cdf[lo + 1] - cdf[lo]);
}

int nc_decoder_check_end(const nc_decoder *dec) {
    if (!dec) return NC_ERR_ARG;
    uint64_t s = shifts(dec), bits = 8 * (uint64_t)dec->len;
    return (s + 10 > bits && s + 2 <= bits) ? NC_OK : NC_ERR_CORRUPT;
}
