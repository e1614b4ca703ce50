"""cffi builder (API mode, out-of-line) for nacrith._ext.

Run by setuptools through ``cffi_modules`` in setup.py, from the project root.
"""

from cffi import FFI

SOURCES = ["csrc/coder.c", "csrc/cdf.c"]

# Determinism: no fused multiply-add and no fast-math, so the CDF is
# bit-identical wherever it is built (docs/format.md, Determinism).
COMPILE_ARGS = ["-O2", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra"]

CDEF = """
int nc_abi_version(void);

typedef struct nc_encoder nc_encoder;
typedef struct nc_decoder nc_decoder;

nc_encoder *nc_encoder_new(void);
void nc_encoder_free(nc_encoder *enc);
int nc_encoder_encode(nc_encoder *enc, const uint32_t *cdf, uint32_t nsym, uint32_t sym);
int nc_encoder_finish(nc_encoder *enc);
size_t nc_encoder_size(const nc_encoder *enc);
const uint8_t *nc_encoder_data(const nc_encoder *enc);

nc_decoder *nc_decoder_new(const uint8_t *data, size_t len);
void nc_decoder_free(nc_decoder *dec);
int nc_decoder_decode(nc_decoder *dec, const uint32_t *cdf, uint32_t nsym, uint32_t *sym_out);
int nc_decoder_check_end(const nc_decoder *dec);

double nc_exp(double x);
int nc_cdf_from_logits(const float *logits, uint32_t n_logits, uint32_t n_extra, double inv_temp,
                       uint32_t *cdf, int64_t prob_of, double *prob_out);
int nc_encode_logits(nc_encoder *enc, const float *logits, uint32_t n_logits, uint32_t n_extra,
                     double inv_temp, uint32_t *cdf, uint32_t sym, uint32_t *freq_out, double *prob_out);
int nc_decode_logits(nc_decoder *dec, const float *logits, uint32_t n_logits, uint32_t n_extra,
                     double inv_temp, uint32_t *cdf, uint32_t *sym_out, uint32_t *freq_out);

#define NC_ABI_VERSION ...
#define NC_CDF_BITS ...
#define NC_CDF_TOTAL ...
#define NC_MAX_SYMBOLS ...
#define NC_OK ...
#define NC_ERR_ARG ...
#define NC_ERR_NOMEM ...
#define NC_ERR_CORRUPT ...
#define NC_ERR_STATE ...
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "nacrith._ext",
    '#include "status.h"\n#include "coder.h"\n#include "cdf.h"\n',
    sources=SOURCES,
    include_dirs=["csrc"],  # relative: setuptools rejects absolute source paths
    extra_compile_args=COMPILE_ARGS,
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
