"""Regenerate the golden files of the current format version. Run by hand, then review the diff.

    python tests/golden/regen.py

Golden files of a released version must never change: a decoder keeps
reading them byte-exactly forever. Only add new cases.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from nacrith.api import Codec
from nacrith.format import FORMAT_VERSION
from nacrith.models.llm import LanguageModel

HERE = Path(__file__).parent / f"v{FORMAT_VERSION}"


def cases() -> dict[str, tuple[bytes, dict[str, object]]]:
    rng = random.Random(1)
    text = b"Golden files pin the format: a decoder reads them byte for byte, forever.\r\n"
    return {
        "empty": (b"", {}),
        "text": (text, {}),
        "special_and_escapes": (
            b"The end of one document is marked <|endoftext|> in many training sets, "
            + "and some bytes, like \x04, or characters like \U00040000, have no token at all; ".encode()
            + b"invalid UTF-8 such as \xff\xfe must survive too.\n",
            {"temperature": 0.9},
        ),
        "binary_stored": (bytes(rng.randrange(256) for _ in range(200)), {}),
        "repetitive": (b"0123456789" * 40, {}),
        "random_zstd": (bytes(rng.randrange(4) for _ in range(400)), {}),
        "mixed_frames": (
            text + b"\x00" * 120 + bytes(rng.randrange(256) for _ in range(60)),
            {"frame_size": 80},
        ),
        "small_context": (text * 3, {"context": 32, "slide": 8}),
    }


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    codec = Codec.from_model(LanguageModel(threads=1))
    manifest = {}
    for name, (data, options) in cases().items():
        (HERE / f"{name}.bin").write_bytes(data)
        (HERE / f"{name}.nc").write_bytes(codec.compress(data, **options))
        manifest[name] = options
    (HERE / "cases.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
