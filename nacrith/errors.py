"""Exception hierarchy.

Every error caused by the data a user gives us is a NacrithError with a
one-line message that names the problem; the CLI prints it and exits 1.
Misuse of the Python API raises the usual built-ins (TypeError, ValueError).
"""


def one_line(exc: BaseException) -> str:
    """What to tell a user of an error: an OSError as "file: reason", anything
    else as the first line of its message (its class name when it has none)."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class NacrithError(Exception):
    """Base of every data, model or environment error."""


class FormatError(NacrithError, ValueError):
    """The input is not a valid Nacrith file: bad magic, bad lengths, corrupt structure."""


class TruncatedError(FormatError):
    """The input ends before the file does."""


class UnsupportedVersionError(FormatError):
    """The file uses a format version or a must-understand feature this build does not know."""


class ChecksumError(NacrithError):
    """Decoded bytes do not match the checksum stored in the file."""


class InputChangedError(NacrithError):
    """The input file changed size while it was being compressed."""


class OutputError(NacrithError):
    """The output cannot be written without harm: it is the input itself, or a
    kind of file (a directory, a block device, a socket) that is never replaced
    or written through. The message starts with the output's path."""

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename = filename


class InputSkipped(NacrithError):
    """An input that is not a regular file, a pipe or stdin (a device, a socket):
    left alone, as zstd leaves it, since reading it may never end or may consume it."""

    def __init__(self, filename: str, message: str) -> None:
        super().__init__(f"{filename}: {message}")
        self.filename = filename


class ModelError(NacrithError):
    """The language model cannot be found, loaded or used."""


class ModelMismatchError(ModelError):
    """The file was made with a different model than the one loaded."""


class DictionaryError(NacrithError):
    """A dictionary is missing, damaged, or not the one a file or model needs."""


class CoderError(NacrithError):
    """The arithmetic coder reported a broken precondition or corrupt coded data."""


class WorkerError(NacrithError):
    """A worker process died (killed, or out of memory) before its frame was done."""


class JobCancelled(NacrithError):
    """The job a frame belonged to was cancelled (its client went away) while the frame was coded."""


class CorpusError(NacrithError):
    """A benchmark corpus file is missing, does not match its checksum, or cannot be fetched."""


class NacrithWarning(UserWarning):
    """Something that may stop a file from decoding elsewhere, e.g. a different llama.cpp build."""
