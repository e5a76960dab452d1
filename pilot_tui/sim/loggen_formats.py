"""Real-format log lines (OpenSSH/sudo/pam syslog, nginx combined, UFW kernel) for the generator and the story.

Each function returns finished lines (with their newline) for a :class:`Clock` time, in the exact shapes the real
daemons write on Debian/Ubuntu with rsyslog's traditional format, so what the demo shows is what real servers log.
"""

from __future__ import annotations

import time

HOST = "web-1"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

ATTACK_USERS = (
    "root",
    "admin",
    "test",
    "user",
    "oracle",
    "ubuntu",
    "postgres",
    "git",
    "ftpuser",
    "guest",
    "pi",
    "support",
    "deploy1",
    "hadoop",
    "mysql",
    "minecraft",
    "teamspeak",
    "jenkins",
    "nagios",
    "www",
)
"""Usernames the brute-force and enumeration bots try (``root`` exists, the rest are invalid users)."""

LOCAL_USERS = ("deploy", "alice", "bob")
SCANNER_AGENTS = (
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)",
    "Mozilla/5.0 zgrab/0.x",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
)
BROWSER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "curl/8.5.0",
)
NORMAL_PATHS = (
    "/",
    "/index.html",
    "/about",
    "/blog/2026/11/pilot",
    "/static/app.js",
    "/static/site.css",
    "/favicon.ico",
    "/api/v1/status",
    "/images/logo.png",
    "/search?q=terminal+dashboard",
)
PROBE_PATHS = (
    "/.env",
    "/.git/config",
    "/wp-login.php",
    "/phpmyadmin/index.php",
    "/cgi-bin/luci",
    "/admin.php",
    "/server-status",
    "/actuator/health",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
)
TRAVERSAL_PATHS = (
    "/static/../../../../etc/passwd",
    "/download?file=..%2f..%2f..%2fetc%2fshadow",
    "/%2e%2e/%2e%2e/%2e%2e/etc/hosts",
    "/img/..%5c..%5cwindows%5cwin.ini",
)
SQLI_PATHS = (
    "/products?id=1%27%20OR%20%271%27=%271",
    "/item?id=1+UNION+SELECT+username,password+FROM+users--",
    "/login?user=admin%27--",
    "/news?id=5%20AND%20SLEEP(5)",
    "/search?q=1%27%20or%201=1%23",
)


class Clock:
    """Syslog/nginx timestamp strings for a moving time, re-formatted only when the second changes (speed)."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._sec = -1
        self._syslog = ""
        self._nginx = ""

    def _refresh(self) -> None:
        sec = int(self.t)
        if sec != self._sec:
            self._sec = sec
            tm = time.gmtime(sec)
            self._syslog = (
                f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
            )
            self._nginx = (
                f"{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} +0000"
            )

    def syslog(self) -> str:
        """``Nov 25 12:00:01`` (rsyslog traditional format, no year)."""
        self._refresh()
        return self._syslog

    def nginx(self) -> str:
        """``25/Nov/2026:12:00:01 +0000`` (nginx ``$time_local``)."""
        self._refresh()
        return self._nginx


# ----------------------------------------------------------------------------------------------------------------
# Line formats (shared with the live story)


def sshd(clock: Clock, pid: int, msg: str) -> str:
    return f"{clock.syslog()} {HOST} sshd[{pid}]: {msg}\n"


def ssh_failed(clock: Clock, pid: int, user: str, ip: str, port: int, invalid: bool) -> list[str]:
    """One failed password attempt as OpenSSH + pam_unix log it (invalid users get their extra lines)."""
    lines = []
    if invalid:
        lines.append(sshd(clock, pid, f"Invalid user {user} from {ip} port {port}"))
        lines.append(sshd(clock, pid, "pam_unix(sshd:auth): check pass; user unknown"))
        lines.append(
            sshd(
                clock,
                pid,
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                f"ruser= rhost={ip}",
            )
        )
        lines.append(sshd(clock, pid, f"Failed password for invalid user {user} from {ip} port {port} ssh2"))
    else:
        lines.append(
            sshd(
                clock,
                pid,
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh "
                f"ruser= rhost={ip}  user={user}",
            )
        )
        lines.append(sshd(clock, pid, f"Failed password for {user} from {ip} port {port} ssh2"))
    return lines


def ssh_repeated(
    clock: Clock, pid: int, user: str, ip: str, port: int, times: int, invalid: bool = False
) -> str:
    """rsyslog's duplicate suppression: one line standing for ``times`` more identical failures."""
    who = f"invalid user {user}" if invalid else user
    return sshd(
        clock, pid, f"message repeated {times} times: [ Failed password for {who} from {ip} port {port} ssh2]"
    )


def ssh_max_auth(clock: Clock, pid: int, user: str, ip: str, port: int) -> list[str]:
    return [
        sshd(
            clock,
            pid,
            f"error: maximum authentication attempts exceeded for {user} from {ip} port {port} ssh2 "
            "[preauth]",
        ),
        sshd(
            clock,
            pid,
            f"Disconnecting authenticating user {user} {ip} port {port}: Too many authentication "
            "failures [preauth]",
        ),
    ]


def ssh_probe_user(clock: Clock, pid: int, user: str, ip: str, port: int) -> list[str]:
    """An enumeration probe: invalid user, then the bot hangs up before trying a password."""
    closing = "Connection closed by" if port % 2 else "Disconnected from"
    return [
        sshd(clock, pid, f"Invalid user {user} from {ip} port {port}"),
        sshd(clock, pid, f"{closing} invalid user {user} {ip} port {port} [preauth]"),
    ]


def ssh_login(clock: Clock, pid: int, user: str, ip: str, port: int, session: int) -> list[str]:
    """A benign publickey login with its pam session and logind lines."""
    return [
        sshd(
            clock,
            pid,
            f"Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 "
            "SHA256:Xq3mV0cZ1sJ0p4bq8ZkWm7m1qk0T3xFh2QkE9wYw4aA",
        ),
        sshd(clock, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
        f"{clock.syslog()} {HOST} systemd-logind[612]: New session {session} of user {user}.\n",
    ]


def ssh_logout(clock: Clock, pid: int, user: str, ip: str, port: int) -> list[str]:
    return [
        sshd(clock, pid, f"Received disconnect from {ip} port {port}:11: disconnected by user"),
        sshd(clock, pid, f"Disconnected from user {user} {ip} port {port}"),
        sshd(clock, pid, f"pam_unix(sshd:session): session closed for user {user}"),
    ]


def cron(clock: Clock, pid: int) -> list[str]:
    return [
        f"{clock.syslog()} {HOST} CRON[{pid}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
        f"{clock.syslog()} {HOST} CRON[{pid}]: pam_unix(cron:session): session closed for user root\n",
    ]


def sudo_ok(clock: Clock, user: str, command: str) -> list[str]:
    return [
        f"{clock.syslog()} {HOST} sudo:   {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={command}\n",
        f"{clock.syslog()} {HOST} sudo: pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid=1000)\n",
        f"{clock.syslog()} {HOST} sudo: pam_unix(sudo:session): session closed for user root\n",
    ]


def sudo_fail(clock: Clock, user: str, attempts: int, command: str) -> list[str]:
    """``attempts`` wrong passwords: one pam_unix line each, then sudo's own summary line."""
    pam = (
        f"{clock.syslog()} {HOST} sudo: pam_unix(sudo:auth): authentication failure; logname={user} uid=1001 "
        f"euid=0 tty=/dev/pts/1 ruser={user} rhost=  user={user}\n"
    )
    plural = "s" if attempts > 1 else ""
    return [pam] * attempts + [
        f"{clock.syslog()} {HOST} sudo:  {user} : {attempts} incorrect password attempt{plural} ; TTY=pts/1 ; "
        f"PWD=/home/{user} ; USER=root ; COMMAND={command}\n"
    ]


def sudo_not_in_sudoers(clock: Clock, user: str, command: str) -> str:
    return (
        f"{clock.syslog()} {HOST} sudo:  {user} : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/{user} ; "
        f"USER=root ; COMMAND={command}\n"
    )


def nginx(clock: Clock, ip: str, method: str, path: str, status: int, size: int, agent: str) -> str:
    return f'{ip} - - [{clock.nginx()}] "{method} {path} HTTP/1.1" {status} {size} "-" "{agent}"\n'


def ufw_block(clock: Clock, ip: str, dst: str, dport: int, sport: int, uptime: float) -> str:
    """A UFW BLOCK line as the kernel logs it (IPv6 sources get the full-length form the kernel prints)."""
    if ":" in ip:
        return (
            f"{clock.syslog()} {HOST} kernel: [{uptime:.6f}] [UFW BLOCK] IN=eth0 OUT= "
            f"MAC=33:33:00:00:00:01:52:54:00:12:34:56:86:dd SRC={ip} DST=2001:0db8:0000:0000:0000:0000:0000:0001 "
            f"LEN=80 TC=0 HOPLIMIT=52 FLOWLBL=0 PROTO=TCP SPT={sport} DPT={dport} WINDOW=1024 RES=0x00 SYN URGP=0\n"
        )
    return (
        f"{clock.syslog()} {HOST} kernel: [{uptime:.6f}] [UFW BLOCK] IN=eth0 OUT= "
        f"MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC={ip} DST={dst} LEN=44 TOS=0x00 PREC=0x00 TTL=243 "
        f"ID={sport} PROTO=TCP SPT={sport} DPT={dport} WINDOW=1024 RES=0x00 SYN URGP=0\n"
    )


# ----------------------------------------------------------------------------------------------------------------
# Bulk generation
