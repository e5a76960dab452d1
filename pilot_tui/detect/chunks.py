"""Reading logs in chunks for the scanner: plain or gzip, cut on line boundaries, decoded as the line-by-line path
decodes them.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

DEFAULT_CHUNK = 8 * 1024 * 1024
"""Bytes read per chunk: big enough that per-chunk overhead vanishes, small enough to stay cache- and RAM-friendly."""


def open_log(path: str | Path) -> io.BufferedIOBase:
    """Open a log for binary reading, transparently gunzipping (by magic bytes, whatever the name)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        raw.close()  # GzipFile never closes a fileobj it was handed: let it open (and close) the file itself
        return gzip.open(path, "rb")
    return raw


def iter_chunks(stream: io.BufferedIOBase, chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[str, int]]:
    """Decoded chunks that end on a line boundary (the last may lack a final newline), with their byte sizes.

    Invalid UTF-8 becomes U+FFFD, CRLF becomes LF — exactly what the line-by-line path sees (a chunk always ends
    just after a newline, which is never inside a UTF-8 sequence, so where chunks are cut changes nothing).
    """
    for piece in iter_raw_chunks(stream, chunk_size):
        yield decode(piece), len(piece)


def iter_raw_chunks(stream: io.BufferedIOBase, chunk_size: int = DEFAULT_CHUNK) -> Iterator[memoryview]:
    """The bytes of :func:`iter_chunks`' chunks, undecoded: views of one reused buffer, valid until the next one.

    Bytes are read into that buffer and handed on from it: no per-chunk copies. A line longer than the buffer
    grows it.
    """
    buf = bytearray(max(chunk_size, 1))
    view = memoryview(buf)
    filled = 0
    try:
        while True:
            if filled == len(buf):  # one line fills the whole buffer: make room
                view.release()
                buf += bytes(len(buf))
                view = memoryview(buf)
            got = stream.readinto(view[filled:])
            if not got:
                break
            filled += got
            cut = buf.rfind(b"\n", 0, filled) + 1
            if cut == 0:
                continue
            with view[:cut] as piece:
                yield piece
            rest = filled - cut
            buf[:rest] = bytes(view[cut:filled])  # the unfinished line (a copy: the ranges may overlap)
            filled = rest
        if filled:
            with view[:filled] as piece:
                yield piece
    finally:
        view.release()


def decode(data: memoryview) -> str:
    """A raw chunk as text: invalid UTF-8 as U+FFFD, CRLF as LF (what reading the file line by line gives)."""
    text = str(data, "utf-8", "replace")
    return text.replace("\r\n", "\n") if "\r" in text else text
