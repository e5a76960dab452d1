"""Detection: rule packs, TOML rules, sliding windows, allowlist, and the chunk scanner behind ``pilot-tui scan``.

Public API (what the oracle engine, ``scan`` and the bench use)::

    from pilot_tui.detect import load_rules, Detector, scan_files

    rules = load_rules(packs=("sshd", "sudo", "web", "portscan"), rules_file=None)   # RuleError names a bad rule
    detector = Detector(rules, allowlist=["10.0.0.0/8"], sensor="web-1", group_ipv6_64=False)
    events = detector.feed(line, log="/var/log/auth.log", now=None)                 # list[ThreatEvent]
    report = scan_files(["/var/log/auth.log", "/var/log/auth.log.2.gz"], Detector(rules))

Events are exactly what :func:`pilot_tui.model.make_event` builds (:mod:`.events` skips re-validating what the
detector guarantees); ``seq`` is left for the sending engine. Nothing here imports Textual.
"""

from .addr import AddressError
from .chunkscan import ScanReport, scan_files, scan_text
from .engine import Detector, DetectorStats
from .rules import BUILTIN_PACKS, Rule, RuleError, RuleSet, load_rules

__all__ = [
    "BUILTIN_PACKS",
    "AddressError",
    "Detector",
    "DetectorStats",
    "Rule",
    "RuleError",
    "RuleSet",
    "ScanReport",
    "load_rules",
    "scan_files",
    "scan_text",
]
