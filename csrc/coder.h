/* 32-bit binary arithmetic coder over integer CDFs with total 2^24.
 *
 * The coder is a queue: symbols decode in the order they were encoded.
 * It uses no floating point, so encoder and decoder agree on every machine.
 *
 * A CDF for an alphabet of n symbols is an array of n + 1 uint32 values with
 * cdf[0] == 0, cdf[n] == NC_CDF_TOTAL and cdf[i] < cdf[i + 1] (every symbol
 * has frequency >= 1).
 */
#ifndef NC_CODER_H
#define NC_CODER_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define NC_CDF_BITS 24
#define NC_CDF_TOTAL (1u << NC_CDF_BITS)

typedef struct nc_encoder nc_encoder;
typedef struct nc_decoder nc_decoder;

nc_encoder *nc_encoder_new(void);
void nc_encoder_free(nc_encoder *enc);
/* Encode symbol `sym` of an alphabet of `nsym` symbols described by `cdf`. */
int nc_encoder_encode(nc_encoder *enc, const uint32_t *cdf, uint32_t nsym, uint32_t sym);
/* Encode the symbol whose interval is [low, low + freq) of the total, freq >= 1. */
int nc_encoder_encode_range(nc_encoder *enc, uint32_t low, uint32_t freq);
/* Flush the final bits. After this, only size/data may be called. */
int nc_encoder_finish(nc_encoder *enc);
size_t nc_encoder_size(const nc_encoder *enc);
const uint8_t *nc_encoder_data(const nc_encoder *enc);

/* The decoder copies `data`, so the caller may free it afterwards. */
nc_decoder *nc_decoder_new(const uint8_t *data, size_t len);
void nc_decoder_free(nc_decoder *dec);
int nc_decoder_decode(nc_decoder *dec, const uint32_t *cdf, uint32_t nsym, uint32_t *sym_out);
/* Decoding in two halves, for callers that find the symbol themselves: the
 * point of the total the next symbol's interval holds (< NC_CDF_TOTAL), then
 * the interval [low, low + freq) of the symbol found there. */
int nc_decoder_target(const nc_decoder *dec, uint32_t *target_out);
int nc_decoder_consume(nc_decoder *dec, uint32_t low, uint32_t freq);
/* After the last symbol: NC_OK when the payload was consumed exactly as the
 * encoder wrote it, NC_ERR_CORRUPT when bytes are missing or left over. */
int nc_decoder_check_end(const nc_decoder *dec);

#endif
