"""``ping``: echo probes to a node's built-in echo service (port 7), with pilotctl 1.18's output and exit codes.

Why a sim twin at all: ``pilot-tui doctor`` judges a peer reachable by ``pilotctl --json ping``, and the tests can
only show that on pilot-sim. What it reproduces, from pilotctl's ``cmdPing`` (the source that prints 1.18's
``ping --help`` text word for word) and the real binary without a daemon:

* order of checks: usage (``invalid_argument``), ``--count`` / ``--timeout`` parsing, the daemon (``not_running``),
  the target (``not_found``, same text as ``connect``), then the client-side trust gate that ``connect`` has too
  (``trust_required`` + ``run: pilotctl handshake <addr>``; ``--no-auto-handshake`` skips it);
* ``--timeout`` (default 5s) is the overall deadline, checked before each probe; each dial and each echo read gets
  ``max(timeout / count, 10s)`` — so one probe against a silent peer can take 10 s whatever ``--timeout`` says,
  and a caller that needs a bound must bound the process itself;
* ``--json``: ``{"results":[{"bytes":n,"rtt_ms":x,"seq":i} | {"error":"…","seq":i}],"target":a,"timeout":false,
  "to":a}`` on stdout — also when every probe failed, which then exits **1** with no stderr envelope; the
  overall deadline passing between probes prints ``"timeout":true`` and exits 0;
* probes are one second apart.
"""

from __future__ import annotations

import socket
import time

from .cli_base import CliError, Ctx, dur, flag_bool, flag_duration, flag_int, not_running, parse_flags
from .cli_stream import require_trust, resolve_target
from .client import DaemonDown, RemoteError, open_stream
from .proto import PORT_ECHO, go_json

USAGE = "usage: pilotctl ping <address|hostname> [--count <n>] [--timeout <dur>] [--trace]"
MIN_PER_ATTEMPT_S = 10.0
"""pilotctl's floor for one dial / one echo read ("legitimate cold-start handshakes have room")."""
FAIL_HINT = (
    "hint: peer may be relay-converging after a beacon roll (~30s) — check reachability: pilotctl peers · "
    "trust state: pilotctl trust"
)


def _echo(sock: socket.socket, rest: bytes, payload: bytes, limit: float) -> tuple[int, str]:
    """Write ``payload`` and do ONE read of up to 1024 bytes within ``limit`` s: (bytes read, error text)."""
    try:
        sock.sendall(payload)
        if rest:
            return min(len(rest), 1024), ""
        sock.settimeout(limit)
        data = sock.recv(1024)
    except TimeoutError:
        return 0, "i/o timeout"
    except OSError as exc:
        return 0, str(exc.strerror or exc)
    return (len(data), "") if data else (0, "EOF")


def cmd_ping(ctx: Ctx, args: list[str]) -> int:
    """``ping <host|addr> [--count n] [--timeout d]`` — exit 0 when any probe answered (or none was made)."""
    flags, pos = parse_flags(args)
    if not pos:
        raise CliError("invalid_argument", USAGE)
    count = flag_int(flags, "count", 4)
    timeout = flag_duration(flags, "timeout", 5.0)
    ctl = ctx.control()
    try:
        node, addr = resolve_target(ctx, ctl, pos[0])
        if not flag_bool(flags, "no-auto-handshake"):
            require_trust(ctl, node, addr)
    finally:
        ctl.close()
    if not ctx.json:
        ctx.out(f"PING {addr}")
    per_attempt = max(timeout / count if count > 0 else timeout, MIN_PER_ATTEMPT_S)
    deadline = time.monotonic() + timeout
    results: list[dict[str, object]] = []
    hinted = False

    def failed(i: int, error: str, rtt: float | None = None) -> None:
        nonlocal hinted
        result: dict[str, object] = {"error": error, "seq": i}
        if rtt is not None:
            result["rtt_ms"] = round(rtt * 1e6) / 1000.0
        results.append(result)
        if not ctx.json:
            ctx.out(f"seq={i} error: {error}")
            if not hinted:
                hinted = True
                ctx.err(FAIL_HINT)

    for i in range(count):
        if time.monotonic() >= deadline:
            if not ctx.json:
                ctx.out("timeout")
                return 0
            return ctx.ok({"results": results or None, "target": addr, "timeout": True, "to": addr})
        start = time.monotonic()
        try:
            sock, rest, _ = open_stream(
                ctx.socket, {"op": "dial", "node_id": node, "port": PORT_ECHO, "timeout": per_attempt}, per_attempt
            )
        except DaemonDown:
            raise not_running(ctx.socket) from None
        except RemoteError as exc:
            failed(i, str(exc))
        else:
            dialled = time.monotonic()
            with sock:
                n, error = _echo(sock, rest, f"ping-{i}".encode(), per_attempt)
            done = time.monotonic()
            if error:
                failed(i, error, done - start)
            else:
                results.append({"bytes": n, "rtt_ms": round((done - start) * 1e6) / 1000.0, "seq": i})
                if not ctx.json:
                    dial_s, echo_s = round(dialled - start, 6), round(done - dialled, 6)
                    ctx.out(f"seq={i} bytes={n} time={dur(done - start)}  [dial={dur(dial_s)} echo={dur(echo_s)}]")
        if i < count - 1:
            time.sleep(1.0)

    all_failed = bool(results) and all("error" in r for r in results)
    if ctx.json:
        ctx.out(go_json({"data": {"results": results or None, "target": addr, "timeout": False, "to": addr},
                         "status": "ok"}))
    return 1 if all_failed else 0
