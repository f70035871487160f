"""The one line a starting server logs: what is running, from where, and how fast.

Pure formatting, so it is tested without a server; the composition root fills it
in once every part has started.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

REDACTED = "***"
_SECRET_QUERY = re.compile(r"pass(word)?|secret|token|key", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The store URL with any password (in the user part or the query) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable store URL>"
    redacted = url
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            redacted = redacted.replace(parts.netloc, f"{user}:{REDACTED}@{host}", 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(_SECRET_QUERY.search(k) for k, _ in pairs):
            safe = [(k, REDACTED if _SECRET_QUERY.search(k) else v) for k, v in pairs]
            head, _, _ = redacted.partition("?")
            redacted = f"{head}?{urlencode(safe, safe='/*')}"
    return redacted


@dataclass(frozen=True)
class Started:
    version: str
    store_url: str
    sessions: int
    live_sessions: int
    events: int
    folded: int
    ready_ms: float
    token_required: bool
    address: str | None


def ready_line(s: Started) -> str:
    """`hivelog 0.1.0 ready in 42 ms: store sqlite:///…, 3 sessions (1 live), 120 events
    restored (20 folded since the checkpoint), token required: no, listening on http://…`."""
    return (
        f"hivelog {s.version} ready in {s.ready_ms:.0f} ms: store {redact_url(s.store_url)}, "
        f"{s.sessions} sessions ({s.live_sessions} live), {s.events} events restored "
        f"({s.folded} folded since the checkpoint), "
        f"token required: {'yes' if s.token_required else 'no'}, "
        f"listening on {s.address or 'an ASGI server'}"
    )
