"""Which file is this? Inode + a fingerprint of its first bytes.

A name says nothing after rotation (``auth.log`` is a new file every week) and an inode alone is reused once a file
is deleted, so a tail that resumed by either alone would skip or repeat lines. Logs only grow at the end, which
makes a hash of the first bytes a stable identity for the lifetime of a file; together with the inode it tells
"same file, resume" from "another file moved into place, read from 0".
"""

from __future__ import annotations

import hashlib
import os
import re
import stat as stat_mod

FINGERPRINT_BYTES = 1024
"""How much of the head of a file the fingerprint covers (a short file is fingerprinted as it grows)."""

_ROTATED_NAME = re.compile(
    r"""(
        \.(gz|bz2|xz|zst|lz4|lzma|zip|z|Z)$   # compressed rotations
      | \.\d+$                                 # auth.log.1, syslog.2
      | [-._]\d{8}(\d{2,6})?$                  # logrotate dateext: auth.log-20240101
    )""",
    re.VERBOSE,
)


def is_rotated_name(name: str) -> bool:
    """True for names that logrotate gives to old copies; such files are never picked up as new sources.

    Reading them would replay history (and ``.gz`` is not text). The file that *was* being followed when it was
    renamed is still drained to its end, by its inode, not by this name.
    """
    return bool(_ROTATED_NAME.search(os.path.basename(name)))


def fingerprint_fd(fd: int, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """Hash of the first ``length`` bytes (fewer if the file is shorter); returns ``(hex, bytes hashed)``."""
    head = os.pread(fd, length, 0) if length > 0 else b""
    return hashlib.blake2b(head, digest_size=16).hexdigest(), len(head)


def head_matches(fd: int, size: int, fp: str, fp_len: int) -> bool:
    """Do the first ``fp_len`` bytes of the open file still hash to ``fp``? (False if it is now shorter.)"""
    if fp_len == 0:
        return True
    if size < fp_len:
        return False
    return fingerprint_fd(fd, fp_len)[0] == fp


def is_same_file(fd: int, st: os.stat_result, ino: int, fp: str, fp_len: int) -> bool:
    """Is the open file (``st`` = its fstat) the one recorded as ``ino`` + fingerprint?

    The device number is deliberately not compared: it can change across reboots (LVM, NFS, container overlays)
    while inode and content stay the same.
    """
    return st.st_ino == ino and head_matches(fd, st.st_size, fp, fp_len)


_KINDS = (
    (stat_mod.S_ISDIR, "a directory"),
    (stat_mod.S_ISFIFO, "a named pipe (FIFO)"),
    (stat_mod.S_ISSOCK, "a socket"),
    (stat_mod.S_ISCHR, "a character device"),
    (stat_mod.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str | None:
    """What a non-regular file is, in words (``"a named pipe (FIFO)"``), or None for a regular file."""
    if stat_mod.S_ISREG(mode):
        return None
    return next((text for test, text in _KINDS if test(mode)), "a special file")


def not_a_log_file(path: str) -> str | None:
    """Why ``path`` cannot be followed as a log (``"is a named pipe (FIFO), not a regular file"``), or None.

    None too when it does not exist (a log may appear later). The tailer follows regular files only: it reads by
    offset (``pread``) and tells rotations apart by inode and head; a pipe or a device has neither, and opening a
    FIFO for reading would wait for a writer. Symlinks are followed, like the tailer does.
    """
    try:
        st = os.stat(path)
    except OSError:
        return None
    kind = kind_of(st.st_mode)
    return None if kind is None else f"is {kind}, not a regular file"


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and fstat it; raise ``IsADirectoryError``/``OSError`` for non-regular files.

    fstat of the fd (not stat of the name) so the identity belongs to exactly the file we hold open. Opened
    non-blocking: a FIFO (or a serial device) put where a log was expected would otherwise block ``open`` until
    a writer shows up, on the tailer's only worker thread, and nothing could stop the process short of SIGKILL.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"is a directory: {path}")
        kind = kind_of(st.st_mode)
        if kind is not None:
            raise OSError(f"is {kind}, not a regular file: {path}")
        os.set_blocking(fd, True)  # no meaning for regular files; cleared so the descriptor is an ordinary one
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def find_by_identity(directory: str, ino: int, fp: str, fp_len: int, exclude: str) -> str | None:
    """Find the file recorded as ``ino`` + fingerprint among ``directory``'s entries, e.g. after a restart.

    This is how a restart resumes a file that was renamed away (``auth.log`` -> ``auth.log.1``) while we were not
    running: the old file is drained from the stored offset before the new one is read. Compressed names are
    skipped (they are new inodes anyway). Only files whose inode matches are opened.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        if entry.path == exclude or entry.name.endswith((".gz", ".bz2", ".xz", ".zst")):
            continue
        try:
            if entry.inode() != ino or not entry.is_file(follow_symlinks=False):
                continue
            fd, st = open_regular(entry.path)
        except OSError:
            continue
        try:
            if is_same_file(fd, st, ino, fp, fp_len):
                return entry.path
        except OSError:
            continue
        finally:
            os.close(fd)
    return None


_NUMBERED_SUFFIX = re.compile(r"\.(\d+)$")
_DATED_SUFFIX = re.compile(r"[-._](\d{8}(?:\d{2,6})?)$")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".zip", ".z", ".Z")


def newer_rotations(path: str, dev: int, ino: int) -> list[tuple[str, int]] | None:
    """The rotated copies of ``path`` that are newer than the file ``(dev, ino)``, oldest first, with their inodes.

    When ``auth.log`` was shifted twice between two looks (``auth.log`` -> ``.1`` -> ``.2``), the file we were
    reading is now ``auth.log.2`` and the one that lived at the path in between is ``auth.log.1``: it is the next
    generation to read, before whatever is at ``path`` now. The order comes from logrotate's names: ``.N`` counts
    up with age (``.3`` is older than ``.1``), a ``dateext`` suffix (``-20240101``) up with time. Compressed
    copies cannot be tailed and are left out. A name alone is not trusted, though: a copy last modified before
    ``(dev, ino)`` was (another naming scheme, a copytruncate copy of lines already read) is older whatever its
    name says, and reading it would deliver its lines twice; each newer generation was written after the older one
    stopped, so its modification time is not earlier.

    Returns None when ``(dev, ino)`` is not among ``path``'s rotated names (deleted, moved elsewhere, or a name
    logrotate would not give): the caller then knows nothing about the order and takes only ``path`` itself.
    Inodes are read with ``stat`` (not the directory entry's ``d_ino``, which overlay filesystems report
    differently), and only for names that look like rotations of ``path``.
    """
    directory, base = os.path.split(path)
    try:
        names = [e.name for e in os.scandir(directory or ".")]
    except OSError:
        return None
    rotated: dict[str, tuple[str, int, int]] = {}  # name -> (suffix, inode, mtime)
    for name in names:
        if not name.startswith(base) or name == base or name.endswith(_COMPRESSED):
            continue
        suffix = name[len(base):]
        if not (_NUMBERED_SUFFIX.fullmatch(suffix) or _DATED_SUFFIX.fullmatch(suffix)):
            continue
        try:
            st = os.stat(os.path.join(directory, name), follow_symlinks=False)
        except OSError:
            continue
        if stat_mod.S_ISREG(st.st_mode) and st.st_dev == dev:
            rotated[name] = (suffix, st.st_ino, st.st_mtime_ns)
    mine = next((name for name, (_, i, _) in rotated.items() if i == ino), None)
    if mine is None:
        return None
    suffix, _, since = rotated[mine]
    numbered = _NUMBERED_SUFFIX.fullmatch(suffix)
    if numbered:
        age = int(numbered.group(1))
        newer = [f"{base}.{n}" for n in range(age - 1, 0, -1)]
    else:
        newer = [
            n
            for _, n in sorted(
                (s[1:], n)
                for n, (s, _, _) in rotated.items()
                if _DATED_SUFFIX.fullmatch(s) and len(s) == len(suffix) and s[0] == suffix[0] and s > suffix
            )
        ]
    return [(os.path.join(directory, n), rotated[n][1]) for n in newer if n in rotated and rotated[n][2] >= since]
