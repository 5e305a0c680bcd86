"""What the rating server answers besides the app: a plain ASGI middleware in front of Streamlit's
own routes (human_eval/server.py installs it).

- Streamlit's metrics endpoint (session counts, open to anyone who can reach the port) and the
  file-upload endpoint (the app has no uploader) answer 404 like any unknown path; the health
  check stays (the browser's page polls it, and it says only "ok").
- Every HTTP response carries the security headers below. The one that matters most here is
  Referrer-Policy: invite links carry the rater's token in the URL (?t=...), and no-referrer keeps
  the browser from sending it to any other site. Framing is refused (clickjacking a rater into
  answering), and responses are never content-sniffed.
"""

from __future__ import annotations

BLOCKED_PREFIXES = ("/_stcore/metrics", "/_stcore/upload_file", "/_stcore/script-health-check")

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'; object-src 'none'; base-uri 'self'"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def blocked(path: str) -> bool:
    """A path at or under one of BLOCKED_PREFIXES, also behind a base URL (/study/_stcore/metrics)."""
    path = "/" + path.strip("/")
    return any(path.endswith(p) or f"{p}/" in path for p in BLOCKED_PREFIXES)


class WebGuard:
    """ASGI middleware: 404 for the blocked paths, security headers on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if blocked(scope.get("path", "")):
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9"), *SECURITY_HEADERS]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            return await send({"type": "http.response.body", "body": b"not found"})

        async def with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in SECURITY_HEADERS}
                message = {
                    **message,
                    "headers": [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                    + list(SECURITY_HEADERS),
                }
            await send(message)

        return await self.app(scope, receive, with_headers)
