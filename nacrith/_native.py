"""Loads the compiled cffi module and checks that it matches this Python code."""

from nacrith.errors import CoderError, NacrithError

try:
    from nacrith._ext import ffi, lib
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError("nacrith's C extension is not built; install the package with 'pip install .'") from exc

ABI_VERSION = 11

if lib.nc_abi_version() != ABI_VERSION:  # pragma: no cover - only on a stale build
    raise ImportError(
        f"nacrith._ext has ABI {lib.nc_abi_version()}, this code needs {ABI_VERSION}; rebuild the package"
    )

CDF_BITS: int = lib.NC_CDF_BITS
CDF_TOTAL: int = lib.NC_CDF_TOTAL
MAX_SYMBOLS: int = lib.NC_MAX_SYMBOLS

_MESSAGES = {
    lib.NC_ERR_ARG: "invalid argument to the coder",
    lib.NC_ERR_NOMEM: "out of memory in the coder",
    lib.NC_ERR_CORRUPT: "coded data is corrupt",
    lib.NC_ERR_STATE: "coder used out of order",
}


def check(status: int, what: str, error: type[NacrithError] = CoderError) -> None:
    """Turn a C status code into an exception naming the operation."""
    if status != lib.NC_OK:
        raise error(f"{what}: {_MESSAGES.get(status, f'status {status}')}")


__all__ = ["CDF_BITS", "CDF_TOTAL", "MAX_SYMBOLS", "check", "ffi", "lib"]
