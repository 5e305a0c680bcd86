"""Invite and admin secrets: made with `secrets.token_urlsafe(32)`, stored only as SHA-256, and
checked in constant time against every stored hash (no early exit that would leak which matched)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{20,100}")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def match_token(token: str | None, hashes: dict[str, str]) -> str | None:
    """The name whose stored hash matches `token`, else None. Malformed tokens never match."""
    if not token or not _TOKEN_RE.fullmatch(token):
        return None
    given = hash_token(token).encode()
    found = None
    for name, stored in hashes.items():
        if hmac.compare_digest(given, stored.encode()):
            found = name
    return found
