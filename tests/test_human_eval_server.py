"""The rating server as `imagen-bench rate` runs it answers nothing but the app: Streamlit's metrics
and upload endpoints give 404 without a token, and every response (page, health check, media image,
404) carries the security headers (human_eval/web_guard.py)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from human_eval_fixtures import rating_server, sbs_study

from human_eval.web_guard import SECURITY_HEADERS, WebGuard, blocked

HEADERS = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_rating_server_exposes_only_the_app(tmp_path):
    study = sbs_study(tmp_path / "study", prompts="drawbench:Colors", raters=1, batch_size=4, control_share=0.25)
    with rating_server(study) as port:
        base = f"http://127.0.0.1:{port}"
        status, headers, body = _get(f"{base}/_stcore/metrics")
        assert status == 404 and b"session" not in body  # Streamlit would list its sessions here
        assert _get(f"{base}/_stcore/upload_file/s/f")[0] == 404
        for path in ("/", "/_stcore/health", "/_stcore/metrics", "/?t=not-a-token"):
            status, headers, _ = _get(base + path)
            assert {k: headers.get(k) for k in HEADERS} == HEADERS, path
        assert headers["referrer-policy"] == "no-referrer"  # the invite token in the URL never leaves in a Referer


def test_guard_blocks_paths_under_any_base_url():
    assert blocked("/_stcore/metrics") and blocked("/study/_stcore/metrics") and blocked("/_stcore/upload_file/a/b")
    assert not blocked("/_stcore/health") and not blocked("/media/abc.jpg") and not blocked("/")


def test_guard_replaces_headers_the_app_set_and_passes_websockets():
    sent, seen = [], []

    async def app(scope, receive, send):
        seen.append(scope["type"])
        if scope["type"] == "http":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"X-Frame-Options", b"ALLOWALL"), (b"a", b"1")],
                }
            )
            await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        sent.append(message)

    guard = WebGuard(app)
    asyncio.run(guard({"type": "http", "path": "/"}, None, send))
    headers = sent[0]["headers"]
    assert (b"a", b"1") in headers and (b"x-frame-options", b"DENY") in headers
    assert not any(k.lower() == b"x-frame-options" and v != b"DENY" for k, v in headers)
    asyncio.run(guard({"type": "websocket", "path": "/_stcore/stream"}, None, send))
    assert seen == ["http", "websocket"]
