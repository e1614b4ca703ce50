"""Damage is found before the work it would waste: a file of frames whose end
is cut or whose frame headers disagree with its index is refused before any
frame is decoded when it can be read from its end, and as soon as a pipe has
ended when it cannot; `info` never passes a file it could tell is damaged.
On the tiny model through real llama.cpp."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import TEXT, assert_clean_error, nacrith
from tiny_model import tiny_text

from nacrith.errors import ChecksumError, FormatError, TruncatedError
from nacrith.format import FrameType, Header
from nacrith.reader import iter_decoded_frames, read_info
from nacrith.reports import ProgressInfo

pytestmark = pytest.mark.llm

FRAMES = 4


@pytest.fixture(scope="module")
def several_frames(codec) -> tuple[bytes, bytes]:
    """A text in FRAMES neural frames, and its file."""
    data = tiny_text(FRAMES * 500, seed=11)[: FRAMES * 500]
    blob = codec.compress(data, frame_size=500, segment=False, lanes=1)
    assert [e.type for e in read_info(io.BytesIO(blob)).trailer.entries] == [FrameType.NEURAL] * FRAMES
    return data, blob


def no_model(header: Header):
    raise AssertionError("a frame was decoded before the damage was found")


def frame_header_offsets(blob: bytes) -> list[int]:
    """Where each frame's header starts."""
    src = io.BytesIO(blob)
    Header.read(src)
    offsets = []
    for entry in read_info(io.BytesIO(blob)).trailer.entries:
        offsets.append(src.tell())
        from nacrith.format import FrameHeader

        fh = FrameHeader.read_after_type(src, FrameHeader.read_type(src), 1 << 20)
        src.seek(fh.payload_size, 1)
        assert fh.raw_size == entry.raw_size
    return offsets


@pytest.mark.parametrize("cut", [1, 8, 20, 200])
def test_a_cut_end_is_found_before_any_frame_is_decoded(several_frames, cut):
    _, blob = several_frames
    with pytest.raises(TruncatedError, match="file is truncated: it ends inside"):
        next(iter_decoded_frames(io.BytesIO(blob[:-cut]), no_model))


def test_a_frame_header_that_disagrees_with_the_index_is_found_first(several_frames):
    _, blob = several_frames
    last = frame_header_offsets(blob)[-1]
    damaged = bytearray(blob)
    damaged[last + 1] ^= 0x01  # the last frame's Raw_Size
    with pytest.raises(FormatError):
        next(iter_decoded_frames(io.BytesIO(bytes(damaged)), no_model))
    with pytest.raises(FormatError):
        read_info(io.BytesIO(bytes(damaged)))


class Pipe(io.RawIOBase):
    """A file's bytes through a real pipe: not seekable, read as they come."""

    def __init__(self, data: bytes) -> None:
        read, write = os.pipe()
        self._reader = os.fdopen(read, "rb", buffering=0)

        def feed() -> None:
            with os.fdopen(write, "wb") as w:
                w.write(data)

        threading.Thread(target=feed, daemon=True).start()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._reader.readinto(buffer)


def test_on_a_pipe_a_cut_end_stops_decoding_as_soon_as_the_pipe_ends(several_frames, model, monkeypatch):
    """Read ahead of the decoder: the pipe ends long before the first frame is
    decoded (the pace hook makes each model call take 50 ms), and the error
    comes then, not after every frame."""
    monkeypatch.setenv("NACRITH_TEST_PACE", "0.05")
    monkeypatch.setenv("NACRITH_TEST_PACE_DECODING", "1")
    _, blob = several_frames
    decoded: list[bytes] = []
    seen: list[ProgressInfo] = []
    frames: Iterator[bytes] = iter_decoded_frames(
        io.BufferedReader(Pipe(blob[:-20])), lambda header: model, progress=seen.append
    )
    with pytest.raises(TruncatedError, match="file is truncated"):
        decoded.extend(frames)
    assert len(decoded) < FRAMES - 1, "found as the pipe ended, not at the end of the decoding"


def test_a_whole_file_through_a_pipe_decodes_and_reports_its_size(several_frames, model):
    data, blob = several_frames
    seen: list[ProgressInfo] = []
    out = b"".join(iter_decoded_frames(io.BufferedReader(Pipe(blob)), lambda h: model, progress=seen.append))
    assert out == data
    seekable: list[ProgressInfo] = []
    assert b"".join(iter_decoded_frames(io.BytesIO(blob), lambda h: model, progress=seekable.append)) == data
    assert seekable and all(info.total_bytes == len(data) for info in seekable)


def test_cli_refuses_a_cut_file_of_frames_at_once(several_frames, tmp_path: Path):
    """The issue's case: `decompress` said "ends inside the index" only after
    decoding every frame; `info` knew at once. Both say so now, and the
    decoder leaves no output."""
    _, blob = several_frames
    (tmp_path / "cut.nc").write_bytes(blob[:-20])
    # A model that cannot load: had a frame been decoded first, that would be the error.
    nowhere = ["--model", str(tmp_path / "no-such-model.gguf")]
    for args in (
        ["decompress", *nowhere, "cut.nc", "-o", "out"],
        ["test", *nowhere, "cut.nc"],
        ["info", "cut.nc"],
    ):
        assert_clean_error(nacrith(*args, cwd=tmp_path), 1, "truncated")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.nc"]
    piped = nacrith("decompress", "-c", "-", stdin=blob[:-20], cwd=tmp_path)
    assert_clean_error(piped, 1, "truncated")


@pytest.mark.parametrize("kind", ["stored", "zstd_stream"])
def test_info_checks_a_one_frame_file_it_can_decode_without_a_model(tmp_path: Path, kind):
    """A stored or zstd file of one frame: info checks its checksum, so a cut
    or damaged one is never listed as fine."""
    data = os.urandom(300) if kind == "stored" else b"\x00\x01\x02\x03" * 200
    (tmp_path / "x.bin").write_bytes(data)
    assert nacrith("compress", "-q", "x.bin", cwd=tmp_path).returncode == 0
    blob = (tmp_path / "x.bin.nc").read_bytes()
    info = read_info(io.BytesIO(blob))
    assert info.trailer.entries[0].type.name.lower() == kind and "checksum included" in info.checked
    for damaged in (blob[:-3], blob[:-1] + bytes([blob[-1] ^ 1])):
        (tmp_path / "bad.nc").write_bytes(damaged)
        r = nacrith("info", "bad.nc", cwd=tmp_path)
        assert r.returncode == 1 and b"Traceback" not in r.stderr, r.stderr
        with pytest.raises((ChecksumError, FormatError)):
            read_info(io.BytesIO(damaged))


def test_info_says_what_it_checked(tmp_path: Path):
    (tmp_path / "a.txt").write_bytes(TEXT)
    assert nacrith("compress", "-q", "a.txt", cwd=tmp_path).returncode == 0
    out = nacrith("info", "a.txt.nc", cwd=tmp_path).stdout.decode()
    assert "checked       " in out


def test_a_cut_file_of_one_neural_frame_is_truncated_for_info_and_decoder(codec, tmp_path: Path):
    """The issue's second case: a one-frame file cut short was listed by info
    as fine ("compressed 200 bytes") and called a ChecksumError by the decoder.
    Version 3 says where the payload ends: both say TruncatedError, and info
    exits 1, without a model."""
    data = tiny_text(600, seed=2)
    blob = codec.compress(data)
    header = Header.read(io.BytesIO(blob))
    assert header.version == 3 and header.single == FrameType.NEURAL
    (tmp_path / "cut.nc").write_bytes(blob[: len(blob) * 2 // 3])
    assert_clean_error(nacrith("info", "cut.nc", cwd=tmp_path), 1, "truncated")
    nowhere = ["--model", str(tmp_path / "no-such-model.gguf")]
    assert_clean_error(nacrith("test", *nowhere, "cut.nc", cwd=tmp_path), 1, "truncated")
    with pytest.raises(TruncatedError):
        codec.decompress(blob[:-1])
