"""A pipe read ahead of its consumer, so that damage at its end is found early.

A Nacrith file of several frames keeps its index and footer at the end. A
seekable file is checked there before its first frame is decoded
(reader.check_body). A pipe cannot be rewound: read in step with the decoder,
its end would be seen only after every frame had been decoded, hours into a
large file. ``ReadAhead`` reads the pipe as fast as it arrives into a spool
on disk (compressed data: small beside what it decodes to, and never held in
memory), hands it to the decoder at the decoder's pace, and once the pipe has
ended runs a check over the whole spool. A failure of that check is raised
to the consumer at its next read or ``raise_failure`` call.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from typing import IO, BinaryIO

__all__ = ["ReadAhead"]

#: Bytes asked of the pipe per read.
CHUNK = 1 << 16


class ReadAhead:
    """Everything ``src`` gives, readable in order through ``read``, with
    ``check(spool)`` run over all of it (a seekable file) once ``src`` ends."""

    def __init__(self, src: BinaryIO, check: Callable[[IO[bytes]], None]) -> None:
        self._src = src
        self._check = check
        # Unlinked from the start, so nothing is left behind; closed by close().
        self._spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        self._fd = self._spool.fileno()
        self._cond = threading.Condition()
        self._size = 0  # bytes in the spool
        self._ended = False
        self._read_error: BaseException | None = None
        #: What the check found wrong with the whole input, once it ended.
        self.failure: BaseException | None = None
        self._offset = 0  # the consumer's position
        # A daemon: a consumer that stops early must not wait for the pipe to end.
        self._thread = threading.Thread(target=self._fill, name="nacrith-read-ahead", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            while chunk := self._src.read(CHUNK):
                self._spool.write(chunk)
                self._spool.flush()
                with self._cond:
                    self._size += len(chunk)
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the consumer, which raises it
            with self._cond:
                self._read_error = exc
                self._cond.notify_all()
            return
        failure = None
        try:
            self._check(self._spool)
        except Exception as exc:
            failure = exc
        with self._cond:
            self.failure = failure
            self._ended = True
            self._cond.notify_all()

    def raise_failure(self) -> None:
        """Raise what the check found, if it has run and found something."""
        if self.failure is not None:
            raise self.failure

    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all that is left when n < 0), fewer only at the end."""
        with self._cond:
            while True:
                if self._read_error is not None:
                    raise self._read_error
                self.raise_failure()
                available = self._size - self._offset
                if self._ended or (n >= 0 and available >= n):
                    break
                self._cond.wait()
        take = available if n < 0 else min(n, available)
        data = os.pread(self._fd, take, self._offset) if take else b""
        self._offset += len(data)
        return data

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._spool.close()
