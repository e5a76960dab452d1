"""Timestamps of log lines, fast enough to call on every matching line of a million-line scan.

Sliding windows must run on the time a line *says*, not on when we read it: an offline scan reads a week of logs in
a second, and a tailer catching up after a restart reads minutes of backlog at once. Three shapes cover the logs we
read:

* traditional syslog (``Nov 25 12:00:01 host prog[pid]: …``) — no year and local time, like rsyslog writes by default;
* RFC 3339 at the start of the line (``2026-11-25T12:00:01.123456+00:00 host …``, rsyslog's high-precision format and
  ``journalctl -o short-iso-precise``), optionally behind an RFC 5424 ``<PRI>1`` header;
* nginx/apache ``[25/Nov/2026:12:00:01 +0000]`` anywhere in the line.

A syslog time has no year: we take the reference's year (``now`` for live lines, the file's mtime for a scan) and step
back one year when that would put the line more than a day in the future — so a file spanning New Year, read in
January, keeps December in the old year. The rule is stateless, so scanning filters in separate passes and feeding
lines one by one give the same times (the scanner's equivalence rests on that).

Parsed keys are cached (a log has far fewer distinct seconds than lines); the caches are cleared when they grow past
:data:`CACHE_MAX`, which bounds memory on endless streams.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Literal

CACHE_MAX = 200_000
"""Entries per cache before it is cleared (each entry is a short string and a float or two)."""

FUTURE_SLACK = 86_400.0
"""A year-less syslog time further than this past the reference belongs to the previous year."""

SECONDS = {f"{i:02d}": i for i in range(100)}
"""Two ASCII digits → their value: the seconds field of a syslog time (as loose as before: "60"–"99" pass)."""

MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}


def _syslog_pair(key: str, year: int) -> tuple[float, float] | None:
    """Epoch seconds of ``Mon dd HH:MM:SS`` (local time) in ``year`` and in ``year - 1``, or None if malformed."""
    month = MONTHS.get(key[:3])
    if month is None or len(key) != 15 or key[3] != " " or key[6] != " " or key[9] != ":" or key[12] != ":":
        return None
    if not (key[4:6].strip() + key[7:9] + key[10:12] + key[13:15]).isascii():
        return None
    try:
        day = int(key[4:6])
        hms = (int(key[7:9]), int(key[10:12]), int(key[13:15]))
        out = []
        for y in (year, year - 1):
            try:
                out.append(datetime(y, month, day, *hms).timestamp())
            except ValueError:  # Feb 29 in a non-leap year: fall back a day so the line still gets a time
                out.append(datetime(y, month, day - 1, *hms).timestamp() + 86_400.0)
    except (ValueError, OverflowError):
        return None
    return out[0], out[1]


def _iso_base(base: str, tz: str) -> float | None:
    """Epoch of ``YYYY-MM-DDTHH:MM:SS`` plus a ``Z``/``±HH:MM``/``±HHMM``/empty (local) zone, or None."""
    try:
        dt = datetime.fromisoformat(base.replace(" ", "T", 1))
    except ValueError:
        return None
    if tz:
        if tz in ("Z", "z"):
            dt = dt.replace(tzinfo=timezone.utc)
        else:
            sign = 1 if tz[0] == "+" else -1 if tz[0] == "-" else 0
            digits = tz[1:].replace(":", "")
            if not sign or len(digits) != 4 or not digits.isdigit():
                return None
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            dt = dt.replace(tzinfo=timezone(sign * offset))
    return dt.timestamp()


def _clf(key: str) -> float | None:
    """Epoch of ``25/Nov/2026:12:00:01 +0000`` (common/combined log format), or None."""
    try:
        month = MONTHS[key[3:6]]
        dt = datetime(int(key[7:11]), month, int(key[0:2]), int(key[12:14]), int(key[15:17]), int(key[18:20]))
        sign = 1 if key[21] == "+" else -1
        offset = sign * (int(key[22:24]) * 3600 + int(key[24:26]) * 60)
    except (KeyError, ValueError, IndexError):
        return None
    return dt.replace(tzinfo=timezone.utc).timestamp() - offset


class LineClock:
    """Turns a line into the epoch time it carries (or None); one instance per detector, caches shared by all logs.

    Syslog times are cached per minute in :attr:`minutes` (the local-time conversion for the reference's year and
    the one before; emptied when the reference's year changes); the seconds are added after. The detector's hot
    loop reads :meth:`minutes_for` and :data:`SECONDS` directly.
    """

    def __init__(self) -> None:
        self._year = 0
        self._ref = float("nan")
        self._ref_year = 0
        self.minutes: dict[str, tuple[float, float] | None] = {}
        self._iso: dict[str, float | None] = {}
        self._clf: dict[str, float | None] = {}

    def line_time(self, line: str, ref: float) -> float | None:
        """Time of ``line``; ``ref`` is "now" for the year guess of syslog times (see the module doc)."""
        if line[:3] in MONTHS:
            return self._syslog_time(line[:15], ref)
        return self._other_time(line)

    def year_of(self, ref: float) -> int:
        """The local year of ``ref``, as :meth:`_syslog_time` takes it (remembered for the last ``ref``)."""
        if ref != self._ref:
            self._ref, self._ref_year = ref, datetime.fromtimestamp(ref).year
        return self._ref_year

    def minutes_for(self, ref: float) -> dict[str, tuple[float, float] | None]:
        """:attr:`minutes`, holding pairs for ``ref``'s year (emptied first when it held another year's): the
        detector's hot loop reads it directly for lines read against ``ref`` — :meth:`line_time`'s own lookups,
        without the calls."""
        year = self.year_of(ref)
        if year != self._year:
            self.minutes.clear()
            self._year = year
        return self.minutes

    def _syslog_time(self, key: str, ref: float) -> float | None:
        """Cached per minute (a week of logs has ~10k minutes but ~600k seconds); seconds are added after."""
        cache = self.minutes_for(ref)
        pair: tuple[float, float] | Literal[False] | None = cache.get(key[:12], False)
        if pair is False:
            if len(cache) >= CACHE_MAX:
                cache.clear()
            pair = cache[key[:12]] = _syslog_pair(key[:12] + ":00", self._year)
        sec = SECONDS.get(key[13:15])
        if pair is None or sec is None:
            return None
        this_year = pair[0] + sec
        if this_year <= ref + FUTURE_SLACK:
            return this_year
        return pair[1] + sec

    def _other_time(self, line: str) -> float | None:
        """RFC 3339 / RFC 5424 or common-log-format times (lines that do not start with a syslog month)."""
        head = line[:3]
        if head[:1] == "<":  # RFC 5424: "<34>1 2026-11-25T12:00:01Z host …"
            cut = line.find(" ", 0, 8)
            if cut > 0:
                line = line[cut + 1 :]
        if line[4:5] == "-" and line[7:8] == "-" and line[10:11] in ("T", " ") and line[13:14] == ":":
            t = self._iso_time(line)
            if t is not None:
                return t
        start = line.find("[")
        if start >= 0 and line[start + 3 : start + 4] == "/":
            key = line[start + 1 : start + 27]
            cache = self._clf
            if key in cache:
                return cache[key]
            if len(cache) >= CACHE_MAX:
                cache.clear()
            t = cache[key] = _clf(key)
            return t
        return None

    def _iso_time(self, line: str) -> float | None:
        end = line.find(" ", 19)
        token = line[:end] if end > 0 else line
        base, rest = token[:19], token[19:]
        frac = 0.0
        if rest[:1] in (".", ","):
            i = 1
            while i < len(rest) and "0" <= rest[i] <= "9":
                i += 1
            if i > 1:
                frac = float("0." + rest[1:i])
            rest = rest[i:]
        key = base + rest
        cache = self._iso
        if key in cache:
            t = cache[key]
        else:
            if len(cache) >= CACHE_MAX:
                cache.clear()
            t = cache[key] = _iso_base(base, rest)
        return None if t is None else t + frac


_ISO_DAYS: dict[int, str] = {}


def iso_utc(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds and ``Z`` — the event ``ts`` form (see ``model.utc_now_iso``).

    Called once per event: the date is formatted once per day (by ``strftime``, exactly as before) and the time of
    day by arithmetic, which is exact in UTC (POSIX time has no leap seconds).
    """
    whole = int(epoch // 1)
    day, rest = divmod(whole, 86_400)
    date = _ISO_DAYS.get(day)
    if date is None:
        if len(_ISO_DAYS) >= 4096:
            _ISO_DAYS.clear()
        date = _ISO_DAYS[day] = datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y-%m-%dT")
    hour, rest = divmod(rest, 3600)
    return f"{date}{hour:02d}:{rest // 60:02d}:{rest % 60:02d}.{int((epoch - whole) * 1000):03d}Z"
