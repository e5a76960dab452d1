"""``pilot-sim inbox``: the received-messages folder, read the way pilotctl 1.18 reads it (measured).

It needs no daemon: it lists ``$HOME/.pilot/inbox/*.json`` newest first (by the time stamp in the file name),
shows a one-line ``preview`` (whitespace collapsed, 120 characters + ``…``) unless ``--full``, and adds the
file name as ``id``. ``inbox read <id>`` prints one record; ``--clear [--before d]`` deletes. ``send-message
--wait`` uses :func:`find_reply` to pick the answer out of the same folder.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from .cli_base import CliError, Ctx, flag_bool, flag_int, parse_flags
from .proto import format_bytes, human_duration, inbox_dir, node_ref, parse_go_duration, parse_rfc3339

PREVIEW_RUNES = 120
_FOOTER = "full body: pilotctl inbox read <id> · --latest · filters: --from --since --limit · clear: --clear [--before 24h]"


def _sort_key(name: str) -> tuple[str, str]:
    stem = name[: -len(".json")]
    return (stem.split("-", 1)[1] if "-" in stem else "", stem)


def entries(directory: Path) -> list[tuple[str, Path]]:
    """(id, path) of every message file, newest first."""
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".json")]
    except OSError:
        return []
    names.sort(key=_sort_key, reverse=True)
    return [(n[: -len(".json")], directory / n) for n in names]


def load(path: Path) -> dict[str, Any] | None:
    """One message record, or None when the file is unreadable or not a JSON object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def preview(record: dict[str, Any]) -> str:
    """pilotctl's preview: base64 bodies show nothing, text is collapsed to one line and cut at 120 runes."""
    data = record.get("data")
    if not isinstance(data, str):
        return ""
    flat = " ".join(data.split())
    return flat if len(flat) <= PREVIEW_RUNES else flat[:PREVIEW_RUNES] + "…"


def _stamp_ns(text: str) -> int | None:
    """An RFC 3339 time as integer nanoseconds, or None.

    pilotctl compares ``--since`` with ``received_at`` to the nanosecond (measured: ``--since`` one nanosecond after a
    message's stamp leaves it out); a float of Unix seconds keeps only ~0.2 µs, so both sides are compared as ints.
    """
    m = re.fullmatch(r"([^.]*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)", text.strip())
    whole = parse_rfc3339(m.group(1) + m.group(3)) if m else None
    if m is None or whole is None:
        return None
    return round(whole) * 1_000_000_000 + int((m.group(2) or "")[:9].ljust(9, "0"))


def _since(text: str) -> int:
    """Unix time in nanoseconds for ``--since 5m`` or ``--since <RFC3339>``."""
    stamp = _stamp_ns(text)
    if stamp is not None:
        return stamp
    try:
        return time.time_ns() - round(parse_go_duration(text) * 1e9)
    except ValueError:
        raise CliError(
            "invalid_argument", "--since must be a duration (5m, 1h) or an RFC3339 timestamp"
        ) from None


def _matching(ctx: Ctx, flags: dict[str, str]) -> list[tuple[str, Path, dict[str, Any]]]:
    since = _since(flags["since"]) if "since" in flags else None
    before = None
    if "before" in flags:
        try:
            before = time.time() - parse_go_duration(flags["before"])
        except ValueError as exc:
            raise CliError("invalid_argument", f"invalid duration for --before: {exc}") from None
    sender = flags.get("from")
    if sender is not None and node_ref(sender) is None:
        sender = _resolve(ctx, sender)
    out = []
    for ident, path in entries(inbox_dir(ctx.env)):
        rec = load(path)
        if rec is None:
            continue
        received = str(rec.get("received_at", ""))
        at = parse_rfc3339(received)
        if since is not None:
            at_ns = _stamp_ns(received)
            if at_ns is None or at_ns < since:  # measured: an unreadable time never matches --since
                continue
        if before is not None and (at is None or at >= before):
            continue
        if sender is not None and rec.get("from") != sender:
            continue
        out.append((ident, path, rec))
    return out


def _resolve(ctx: Ctx, hostname: str) -> str:
    """Address of ``hostname`` (``--from`` accepts names; that needs the node)."""
    from .client import RemoteError

    ctl = ctx.control()
    try:
        return str(ctl.call("resolve", hostname=hostname)["address"])
    except RemoteError:
        raise CliError("not_found", f"cannot resolve {hostname!r}") from None
    finally:
        ctl.close()


def _shown(ident: str, rec: dict[str, Any], full: bool) -> dict[str, Any]:
    item = {k: v for k, v in rec.items() if k not in ("data", "data_b64", "data_encoding")}
    item["id"] = ident
    if full:  # measured: a base64 (binary) body shows as "" here; `inbox read` gives data_b64
        item["data"] = rec["data"] if isinstance(rec.get("data"), str) else ""
    else:
        item["preview"] = preview(rec)
    return item


def cmd_inbox(ctx: Ctx, args: list[str]) -> int:
    """``inbox [--limit n] [--full] [--latest] [--since d] [--from peer] | inbox read <id> | inbox --clear``."""
    flags, pos = parse_flags(args)
    directory = inbox_dir(ctx.env)
    if pos and pos[0] == "read":
        if len(pos) < 2:
            raise CliError("invalid_argument", "usage: pilotctl inbox read <id>")
        ident = pos[1][: -len(".json")] if pos[1].endswith(".json") else pos[1]
        rec = load(directory / f"{ident}.json") if "/" not in ident else None
        if rec is None:
            raise CliError("not_found", f'no message "{pos[1]}" — list ids with: pilotctl inbox')
        rec = dict(rec, id=ident)
        plain = rec.get("data") if isinstance(rec.get("data"), str) else None
        return ctx.ok(rec, plain)
    limit = flag_int(flags, "limit", 10)
    matched = _matching(ctx, flags)
    if flag_bool(flags, "clear"):
        for _, path, _ in matched:
            try:
                path.unlink()
            except OSError:
                pass
        remaining = len(entries(directory))
        return ctx.ok(
            {"cleared": len(matched), "remaining": remaining},
            f"cleared {len(matched)} message(s), {remaining} remaining",
        )
    latest = flag_bool(flags, "latest")
    full = flag_bool(flags, "full") or latest
    shown = matched[:1] if latest else (matched[:limit] if limit > 0 else matched)
    items = [_shown(i, r, full) for i, _, r in shown]
    data: dict[str, Any] = {"messages": items, "shown": len(items), "total": len(matched)}
    if directory.is_dir():
        data["dir"] = str(directory)
    return ctx.ok(data, _plain(items, len(matched)))


def _plain(items: list[dict[str, Any]], total: int) -> str:
    if not items:
        return "inbox is empty (no messages match the filters)"
    lines = [f"Inbox — {total} message(s) · showing {len(items)} newest", ""]
    now = time.time()
    for it in items:
        at = parse_rfc3339(str(it.get("received_at", "")))
        age = f"{human_duration(now - at)} ago" if at is not None else "?"
        lines.append(f"  {it['id']}")
        lines.append(
            f"  {it.get('from', '?')} · {it.get('type', '?')} · {age} · {format_bytes(int(it.get('bytes', 0)))}"
        )
        ids = [f"{k} {it[k]}" for k in ("message_id", "reply_to") if it.get(k)]
        if ids:
            lines.append("  " + " · ".join(ids))
        lines.append("  " + str(it.get("preview", it.get("data", ""))))
        lines.append("")
    lines.append(_FOOTER)
    return "\n".join(lines)


def message_id_for(ctx: Ctx, value: str) -> str:
    """``--reply-to`` accepts a message_id or an inbox id (whose message_id is then used)."""
    rec = load(inbox_dir(ctx.env) / f"{value}.json") if "/" not in value else None
    if rec and isinstance(rec.get("message_id"), str):
        return str(rec["message_id"])
    return value


def find_reply(ctx: Ctx, sender: str, message_id: str, cutoff: float) -> dict[str, Any] | None:
    """The reply to ``message_id`` from ``sender`` that arrived after ``cutoff`` (an untagged one as fallback)."""
    fallback = None
    for rec in (load(p) for _, p in entries(inbox_dir(ctx.env))):
        if rec is None or rec.get("from") != sender:
            continue
        at = parse_rfc3339(str(rec.get("received_at", "")))
        if at is None or at < cutoff:
            continue
        if rec.get("reply_to") == message_id:
            return rec
        if not rec.get("reply_to") and fallback is None:
            fallback = rec
    return fallback
