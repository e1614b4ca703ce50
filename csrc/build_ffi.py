"""cffi builder (API mode, out-of-line) for nacrith._ext.

Run by setuptools through ``cffi_modules`` in setup.py, from the project root.
"""

import importlib.util
import os
import sys
from pathlib import Path

from cffi import FFI

SOURCES = [
    "csrc/coder.c",
    "csrc/cdf.c",
    "csrc/ngram.c",
    "csrc/match.c",
    "csrc/bias.c",
    "csrc/mix.c",
    "csrc/mix_double.c",
    "csrc/mix_float32.c",
    "csrc/vec.c",
    "csrc/lanes.c",
    "csrc/log.c",
    "csrc/crash.c",
]

# Determinism: no fused multiply-add and no fast-math, so the CDF is
# bit-identical wherever it is built (docs/format.md, Determinism).
# -O3 vectorises the dense loops of arithmetic 2 (csrc/vec.h), which give the
# same bits at any width. Two flags let them vectorise and change no value:
# -fno-math-errno (sqrtf becomes one instruction; its argument is never
# negative, so errno was never set) and -fno-trapping-math (a comparison may be
# evaluated for every element and the result selected; we never read the FP
# exception flags). $NACRITH_CFLAGS replaces the optimisation level, for the
# test that builds at -O0 and -O3 and compares the files
# (tests/test_build_flags.py): the result must not depend on it.
OPTIMISE = os.environ.get("NACRITH_CFLAGS", "-O3").split()
COMPILE_ARGS = [
    *OPTIMISE,
    "-std=c11",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-Wall",
    "-Wextra",
]


def _hyperparameters() -> tuple:
    """The ensemble's table (nacrith/settings.py HYPERPARAMETERS), read from its
    file: the build runs before the package can be imported, and settings.py
    imports only the standard library."""
    path = Path(__file__).resolve().parent.parent / "nacrith" / "settings.py"
    spec = importlib.util.spec_from_file_location("_nacrith_settings_for_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look a class's module up while making it
    spec.loader.exec_module(module)
    return module.HYPERPARAMETERS


C_TYPES = {int: "uint32_t", float: "double"}


def params_cdef(rows) -> str:
    """The declarations of nc_ens_params and of the parts' own structs in it
    (nc_ngram_params, nc_match_params), from the rows that name a C field, in
    the table's order. They restate csrc/mix.h, ngram.h and match.h for cffi,
    which checks them against the compiler's: a row without its C field fails
    to compile, a C field without its row (or in another order) fails on the
    first use of the struct ("wrong total size", "wrong offset")."""
    parts: dict[str, list[str]] = {}
    fields = ["uint32_t flags;"]
    for row in rows:
        if row.c_field is None:
            continue
        part, _, name = row.c_field.rpartition(".")
        declaration = f"{C_TYPES[row.kind]} {name};"
        if not part:
            fields.append(declaration)
            continue
        if part not in parts:
            parts[part] = []
            fields.append(f"nc_{part}_params {part};")
        parts[part].append(declaration)
    structs = [(f"nc_{part}_params", members) for part, members in parts.items()]
    structs.append(("nc_ens_params", fields))
    return "".join(
        "typedef struct {\n" + "".join(f"    {m}\n" for m in members) + f"}} {name};\n"
        for name, members in structs
    )


CDEF = """
int nc_abi_version(void);
void nc_log_discard(int level, const char *text, void *user_data);

int nc_crash_guard(int sig, const char *message);
int nc_crash_remove_on_crash(const char *path);
void nc_crash_forget(int slot);

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

typedef struct {
    uint32_t n;
    uint32_t tok[16];
    double p[16];
    double escape;
} nc_sparse;

typedef struct nc_ngram nc_ngram;
nc_ngram *nc_ngram_new(const nc_ngram_params *params);
void nc_ngram_free(nc_ngram *ng);
void nc_ngram_reset(nc_ngram *ng);
void nc_ngram_predict(nc_ngram *ng, nc_sparse *out);
uint32_t nc_ngram_found_order(const nc_ngram *ng);
int nc_ngram_update(nc_ngram *ng, uint32_t token);

typedef struct nc_match nc_match;
nc_match *nc_match_new(const nc_match_params *params);
void nc_match_free(nc_match *m);
void nc_match_reset(nc_match *m);
void nc_match_predict(nc_match *m, nc_sparse *out);
uint32_t nc_match_length(const nc_match *m);
uint32_t nc_match_bucket(const nc_match *m);
double nc_match_confidence(const nc_match *m, uint32_t bucket);
int nc_match_update(nc_match *m, uint32_t token);

typedef struct nc_bias nc_bias;
nc_bias *nc_bias_new(uint32_t n_vocab, double lr, double limit, double scale_lr);
void nc_bias_free(nc_bias *b);
void nc_bias_reset(nc_bias *b);
const double *nc_bias_values(const nc_bias *b);
double nc_bias_scale(const nc_bias *b);
int nc_softmax(const float *logits, uint32_t n, double inv_temp, const nc_bias *bias, double *base,
               uint32_t *top);
int nc_bias_update(nc_bias *b, const double *base, const float *logits, double inv_temp, uint32_t token);

typedef struct nc_ens nc_ens;
int nc_ens_check_params(const nc_ens_params *params);
void nc_ens_free(nc_ens *e);
void nc_ens_reset(nc_ens *e);
int nc_ens_needs_llm(const nc_ens *e);
int nc_ens_encode(nc_ens *e, nc_encoder *enc, const float *logits, uint32_t sym, uint32_t *freq_out,
                  double *prob_out);
int nc_ens_decode(nc_ens *e, nc_decoder *dec, const float *logits, uint32_t *sym_out, uint32_t *freq_out);
nc_ens *nc_ens_new_lanes(const nc_ens_params *params, uint32_t n_vocab, uint32_t n_extra, double inv_temp,
                         uint32_t n_lanes, uint32_t arith);
int nc_ens_set_lane(nc_ens *e, uint32_t lane);
typedef struct {
    void *ptr;
    size_t size;
} nc_region;
uint32_t nc_ens_regions(nc_ens *e, nc_region *out, uint32_t max);
int nc_ens_observe(nc_ens *e, const uint32_t *tokens, uint32_t n);

typedef struct {
    int32_t *token;
    int32_t *pos;
    int32_t *n_seq_id;
    int32_t **seq_id;
    int8_t *logits;
} nc_batch;
typedef struct {
    uint32_t n_lanes;
    uint32_t n_vocab, n_extra;
    double inv_temp;
    uint32_t arith;
    const nc_ens_params *ensemble;
    int shared;
    uint32_t batch;
    uint32_t context, slide;
    int32_t start_token;
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
int nc_lanes_begin_encode(nc_lanes *ln, const uint32_t *symbols, const uint64_t *bounds, const nc_batch *b,
                          uint32_t *n_tokens_out);
int nc_lanes_begin_decode(nc_lanes *ln, const uint8_t *const *payloads, const size_t *lens,
                          const uint64_t *counts, const nc_batch *b, uint32_t *n_tokens_out);
int nc_lanes_step(nc_lanes *ln, const float *outputs, uint32_t *n_tokens_out, uint32_t *slides_out,
                  uint32_t *n_slides_out, int *done_out);
int nc_lanes_finish(nc_lanes *ln);
int nc_lanes_payload(const nc_lanes *ln, uint32_t lane, const uint8_t **data_out, size_t *len_out);
int nc_lanes_check_end(const nc_lanes *ln);
const uint32_t *nc_lanes_symbols(const nc_lanes *ln);
void nc_lanes_get_stats(const nc_lanes *ln, nc_lanes_stats *out);
nc_ens *nc_lanes_ensemble(nc_lanes *ln);

#define NC_ENS_NGRAM ...
#define NC_ENS_MATCH ...
#define NC_ENS_BIAS ...
#define NC_ENS_SKIP ...
#define NC_ENS_APM ...
#define NC_ARITH_EXACT_DOUBLE ...
#define NC_ARITH_FLOAT32 ...
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
ffibuilder.cdef(params_cdef(_hyperparameters()) + CDEF)
ffibuilder.set_source(
    "nacrith._ext",
    "".join(
        f'#include "{h}"\n' for h in ("status.h", "coder.h", "cdf.h", "mix.h", "lanes.h", "log.h", "crash.h")
    ),
    sources=SOURCES,
    include_dirs=["csrc"],  # relative: setuptools rejects absolute source paths
    extra_compile_args=COMPILE_ARGS,
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
