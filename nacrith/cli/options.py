"""Option groups that several commands share (argparse parents), and the
types of their values."""

from __future__ import annotations

import argparse
from typing import TypeAlias

from nacrith.dictionary import DICTS_ENV


def _gpu_list(text: str) -> tuple[str, ...]:
    """ "0,1" -> ("0", "1"): CUDA device numbers, as CUDA_VISIBLE_DEVICES takes them."""
    gpus = tuple(part.strip() for part in text.split(","))
    if not all(part.isdigit() for part in gpus) or len(set(gpus)) != len(gpus):
        raise argparse.ArgumentTypeError(f"expected distinct device numbers such as 0,1, not {text!r}")
    return gpus


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G suffix (powers of 1024)."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    scale = units.get(text[-1:].lower(), 1)
    return _positive_int(text[:-1] if scale > 1 else text) * scale


#: What add_subparsers returns, to which each command's builder adds its parser.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _model_options() -> argparse.ArgumentParser:
    """--model and --threads: every command that loads the model."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--model", metavar="PATH", help="GGUF model (default: $NACRITH_MODEL, else SmolLM2-135M)"
    )
    options.add_argument(
        "-T",
        "--threads",
        type=_positive_int,
        metavar="N",
        help="llama.cpp threads per worker (default: the cores available, divided among the workers)",
    )
    return options


def _worker_options() -> argparse.ArgumentParser:
    """--workers and --gpus: every command that codes frames in worker processes."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes coding frames in parallel, each with its own model "
        "(default: 1, or one per GPU); the file does not depend on it",
    )
    options.add_argument(
        "--gpus",
        type=_gpu_list,
        default=(),
        metavar="0,1,...",
        help="run the model on these GPUs (CUDA device numbers), workers dealt over them; "
        "a file made on a GPU decodes only on a GPU of the same build",
    )
    return options


def _dict_options(compressing: bool) -> argparse.ArgumentParser:
    """--dict: compress uses it; decompress and test find a file's dictionary with it."""
    options = argparse.ArgumentParser(add_help=False)
    where = f"${DICTS_ENV} and ~/.cache/nacrith/dicts"
    options.add_argument(
        "--dict",
        metavar="FILE",
        help=f"a dictionary (nacrith dict build) to compress with; files made with it name it, and "
        f"decompress finds it by its fingerprint in {where}"
        if compressing
        else f"the dictionary the file was made with; without it, the file's dictionary is looked for by "
        f"its fingerprint in {where}",
    )
    return options


def _input_options() -> argparse.ArgumentParser:
    """FILE and --quiet: compress, decompress and test."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "file", nargs="?", default="-", metavar="FILE", help="input file; - or nothing for stdin"
    )
    options.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary")
    options.add_argument(
        "-k", "--keep", action="store_true", help="keep the input file (always: nacrith never deletes one)"
    )
    options.add_argument(
        "--json",
        action="store_true",
        help="the summary as one JSON object, for scripts: on stdout, or on stderr when the data goes there",
    )
    return options


def _output_options() -> argparse.ArgumentParser:
    """Where the result goes: compress and decompress."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("-o", "--output", metavar="OUT", help="output file; - for stdout")
    options.add_argument("-c", "--stdout", action="store_true", help="write to stdout")
    options.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="overwrite existing files; allow compressed data on a terminal",
    )
    return options
