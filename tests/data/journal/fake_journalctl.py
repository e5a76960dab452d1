"""Stand-in for ``journalctl`` in tests (CI has no journal).

Replays recorded entries (one JSON object per line, as ``journalctl --output=json`` prints them) from the file
named by ``$FAKE_JOURNAL``, honouring the options the journal source uses: ``--unit`` (matched against
``_SYSTEMD_UNIT``), ``--after-cursor``, ``--lines`` and ``--no-tail``. With ``--follow`` it then keeps watching the
file for appended entries (tests append to simulate new log lines) until killed, like the real thing.

Test hooks: ``$FAKE_JOURNAL_ARGV`` names a file that gets each invocation's argv as a JSON line;
``$FAKE_JOURNAL_EXIT`` makes a ``--follow`` run exit with that status after replaying (to test restarts).
"""

from __future__ import annotations

import json
import os
import sys
import time


def parse(argv: list[str]) -> dict[str, object]:
    opts: dict[str, object] = {"units": [], "follow": False, "cursor": None, "lines": None, "no_tail": False}
    units: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, _, value = arg.partition("=")
        if arg in ("-f", "--follow"):
            opts["follow"] = True
        elif arg == "--no-tail":
            opts["no_tail"] = True
        elif name in ("-o", "--output", "-u", "--unit", "--after-cursor", "-n", "--lines"):
            if not value:
                i += 1
                value = argv[i]
            if name in ("-o", "--output") and value != "json":
                sys.exit(f"fake journalctl: only json output, got {value}")
            if name in ("-u", "--unit"):
                units.append(value)
            elif name == "--after-cursor":
                opts["cursor"] = value
            elif name in ("-n", "--lines"):
                opts["lines"] = int(value)
        else:
            sys.exit(f"fake journalctl: unknown option {arg}")
        i += 1
    opts["units"] = units
    return opts


def wanted(raw: str, units: list[str]) -> bool:
    if not raw.strip():
        return False
    return not units or json.loads(raw).get("_SYSTEMD_UNIT") in units


def main() -> int:
    argv = sys.argv[1:]
    if os.environ.get("FAKE_JOURNAL_ARGV"):
        with open(os.environ["FAKE_JOURNAL_ARGV"], "a", encoding="utf-8") as f:
            f.write(json.dumps(argv) + "\n")
    opts = parse(argv)
    units = opts["units"]
    assert isinstance(units, list)
    path = os.environ["FAKE_JOURNAL"]
    with open(path, "rb") as f:
        data = f.read()
    consumed = data.rfind(b"\n") + 1
    entries = [r for r in data[:consumed].decode().splitlines() if wanted(r, units)]
    if opts["cursor"] is not None:
        cursors = [json.loads(r)["__CURSOR"] for r in entries]
        if opts["cursor"] not in cursors:
            print("Failed to seek to cursor: Invalid argument", file=sys.stderr)
            return 1
        entries = entries[cursors.index(opts["cursor"]) + 1 :]
    elif not opts["no_tail"]:
        lines = opts["lines"] if opts["lines"] is not None else 10
        assert isinstance(lines, int)
        entries = entries[max(0, len(entries) - lines) :] if lines else []
    for raw in entries:
        sys.stdout.write(raw + "\n")
    sys.stdout.flush()
    if not opts["follow"]:
        return 0
    if os.environ.get("FAKE_JOURNAL_EXIT"):
        print("fake journalctl: exiting as asked", file=sys.stderr)
        return int(os.environ["FAKE_JOURNAL_EXIT"])
    while True:
        time.sleep(0.02)
        with open(path, "rb") as f:
            f.seek(consumed)
            more = f.read()
        end = more.rfind(b"\n") + 1
        if end:
            consumed += end
            for raw in more[:end].decode().splitlines():
                if wanted(raw, units):
                    sys.stdout.write(raw + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
