"""Reading logs in chunks for the scanner: plain or gzip, cut on line boundaries, decoded as the line-by-line path
decodes them — and, for the C engine, read and matched one chunk ahead in a helper thread.
"""

from __future__ import annotations

import gzip
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DEFAULT_CHUNK = 8 * 1024 * 1024
"""Bytes read per chunk: big enough that per-chunk overhead vanishes, small enough to stay cache- and RAM-friendly."""


def open_log(path: str | Path) -> IO[bytes]:
    """Open a log for binary reading, transparently gunzipping (by magic bytes, whatever the name)."""
    raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        raw.close()  # GzipFile never closes a fileobj it was handed: let it open (and close) the file itself
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return raw


def iter_chunks(stream: IO[bytes], chunk_size: int = DEFAULT_CHUNK) -> Iterator[tuple[str, int]]:
    """Decoded chunks that end on a line boundary (the last may lack a final newline), with their byte sizes.

    Invalid UTF-8 becomes U+FFFD, CRLF becomes LF — exactly what the line-by-line path sees (a chunk always ends
    just after a newline, which is never inside a UTF-8 sequence, so where chunks are cut changes nothing).
    """
    for piece in iter_raw_chunks(stream, chunk_size):
        yield decode(piece), len(piece)


def iter_raw_chunks(stream: IO[bytes], chunk_size: int = DEFAULT_CHUNK) -> Iterator[memoryview]:
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
            got = stream.readinto(view[filled:])  # type: ignore[attr-defined]
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


def iter_owned_chunks(
    stream: IO[bytes], chunk_size: int = DEFAULT_CHUNK, spare: queue.SimpleQueue[bytearray] | None = None
) -> Iterator[memoryview]:
    """:func:`iter_raw_chunks`, but each chunk in a buffer of its own, which the reader does not touch again: it may
    be kept while the next is read (:func:`matched_ahead`). Only the unfinished last line is copied, into the next
    buffer; the read itself (which releases the GIL) fills the buffer in place. Buffers the caller is done with may
    come back through ``spare`` (a new one costs page faults and zeroing, with the GIL held)."""
    tail = b""
    size = max(chunk_size, 1)
    while True:
        buf = _spare_buffer(spare, len(tail) + size)
        buf[: len(tail)] = tail
        filled = len(tail)
        with memoryview(buf) as view:
            while filled < len(buf):
                got = stream.readinto(view[filled:])  # type: ignore[attr-defined]
                if not got:
                    break
                filled += got
        cut = buf.rfind(b"\n", 0, filled) + 1
        if filled < len(buf):  # end of the stream
            if filled:
                yield memoryview(buf)[:filled]
            return
        if cut == 0:  # one line fills the whole buffer: carry it all into a bigger one
            tail, size = bytes(buf), size * 2
            continue
        tail = bytes(buf[cut:])
        yield memoryview(buf)[:cut]


def _spare_buffer(spare: queue.SimpleQueue[bytearray] | None, size: int) -> bytearray:
    while spare is not None and not spare.empty():
        buf = spare.get_nowait()
        if len(buf) == size:
            return buf
    return bytearray(size)


def matched_ahead(
    native: Any, stream: IO[bytes], chunk_size: int = DEFAULT_CHUNK
) -> Iterator[tuple[memoryview, Any]]:
    """``(chunk, found)`` pairs: each raw chunk with the C engine's matches (``None``: Python must scan it), read and
    matched one chunk ahead by a helper thread.

    Reading, gunzipping and running the filters' regexes need no GIL (``Engine.prepare`` releases it), so on a
    machine with two cores they overlap the counting of the previous chunk, which holds the GIL. At most two
    chunks wait. A read error is raised here, in the caller's thread; the helper stops when the caller stops.
    """
    ready: queue.Queue[tuple[memoryview, Any] | BaseException | None] = queue.Queue(maxsize=2)
    spare: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    stop = threading.Event()

    def offer(item: tuple[memoryview, Any] | BaseException | None) -> bool:
        """Queue ``item`` unless the caller has stopped (then False): the helper never blocks on a full queue."""
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for piece in iter_owned_chunks(stream, chunk_size, spare):
                if not offer((piece, native.prepare(piece))):
                    return
            offer(None)
        except BaseException as exc:  # handed to the caller, who raises it
            offer(exc)

    helper = threading.Thread(target=work, name="scan-reader", daemon=True)
    helper.start()
    try:
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            piece = item[0]
            buf = piece.obj
            try:  # the caller is done with this chunk: its buffer may be read into again, once nothing holds it
                piece.release()
            except BufferError:
                continue
            spare.put(buf)  # type: ignore[arg-type]
    finally:
        stop.set()
        helper.join()
