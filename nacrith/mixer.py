"""The ensemble's parameters for C (csrc/mix.h): the language model,
corrected by the bias head, mixed with the n-gram and match models, refined
by an APM stage and turned into the coder's CDF. The engine runs it
(csrc/lanes.h), one C call per step for all the streams of a frame.
"""

from __future__ import annotations

from typing import Any

from nacrith._native import ffi, lib
from nacrith.models.match import match_params
from nacrith.models.ngram import ngram_params
from nacrith.settings import EnsembleSettings

__all__ = ["ensemble_params"]


def ensemble_params(settings: EnsembleSettings) -> Any:
    """The C parameters (nc_ens_params) of these settings."""
    p = ffi.new("nc_ens_params *")
    p.flags = (
        (lib.NC_ENS_NGRAM if settings.ngram else 0)
        | (lib.NC_ENS_MATCH if settings.match else 0)
        | (lib.NC_ENS_BIAS if settings.bias else 0)
        | (lib.NC_ENS_SKIP if settings.skip else 0)
        | (lib.NC_ENS_APM if settings.apm else 0)
    )
    p.ngram = ngram_params(settings)[0]
    p.match = match_params(settings)[0]
    p.bias_lr = settings.bias_lr
    p.bias_limit = settings.bias_limit
    p.mixer_lr = settings.mixer_lr
    p.mixer_limit = settings.mixer_limit
    p.apm_rate = settings.apm_rate
    p.skip_min_len = settings.skip_min_len
    p.skip_confidence = settings.skip_confidence
    p.skip_warmup = settings.skip_warmup
    p.skip_agree = settings.skip_agree
    p.skip_solo_min_len = settings.skip_solo_min_len
    p.skip_solo_confidence = settings.skip_solo_confidence
    p.bias_scale_lr = settings.bias_scale_lr
    p.bias_contexts = settings.bias_contexts
    p.bias_context_lr = settings.bias_context_lr
    return p
