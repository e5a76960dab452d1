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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class FileIdentity:
    """Device, inode and head fingerprint of an open file."""

    dev: int
    ino: int
    fp: str
    fp_len: int


def fingerprint_fd(fd: int, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """Hash of the first ``length`` bytes (fewer if the file is shorter); returns ``(hex, bytes hashed)``."""
    head = os.pread(fd, length, 0) if length > 0 else b""
    return hashlib.blake2b(head, digest_size=16).hexdigest(), len(head)


def identity_of(fd: int, st: os.stat_result) -> FileIdentity:
    """Identity of an open file, fingerprinting as much of its head as exists now."""
    fp, fp_len = fingerprint_fd(fd, min(st.st_size, FINGERPRINT_BYTES))
    return FileIdentity(st.st_dev, st.st_ino, fp, fp_len)


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


def open_regular(path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and fstat it; raise ``IsADirectoryError``/``OSError`` for non-regular files.

    fstat of the fd (not stat of the name) so the identity belongs to exactly the file we hold open.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if stat_mod.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"is a directory: {path}")
        if not stat_mod.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file: {path}")
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
