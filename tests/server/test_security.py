# C6 (reliability.md §5.C): every route needs the API key except /health; CORS headers only for
# the configured origin; loopback by default; a public address needs a key; Host header check.
"""Authentication, CORS, binding."""

from __future__ import annotations

import subprocess

import openai
import pytest

from conftest import CHAT_MODEL, gemma_bin, request

# Every route the server registers (GET and POST), plus one it does not.
ROUTES = [
    ("GET", "/health"), ("GET", "/metrics"), ("GET", "/v1/models"), ("GET", "/models"),
    ("POST", "/v1/chat/completions"), ("POST", "/chat/completions"), ("POST", "/v1/completions"),
    ("POST", "/completions"), ("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/no/such/route"),
]
PUBLIC = {"/health"}
BODIES = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
    "/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
    "/v1/completions": {"prompt": "count:", "max_tokens": 1},
    "/completions": {"prompt": "count:", "max_tokens": 1},
    "/tokenize": {"content": "hi"},
    "/detokenize": {"tokens": [2]},
}


def options(url, headers):
    return request("OPTIONS", url, None, headers)


def get(url, headers):
    return request("GET", url, None, headers)


def call(server, method, path, headers=None):
    return request(method, server.url + path, BODIES.get(path) if method == "POST" else None, headers, timeout=30)


@pytest.mark.parametrize("method,path", ROUTES)
def test_c6_every_route_but_health_needs_the_key(secure_server, method, path):
    if path in PUBLIC:
        assert call(secure_server, method, path).status_code == 200
        return
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"}, {"X-Api-Key": "sekri"}]:
        r = call(secure_server, method, path, headers)
        assert r.status_code == 401, (path, headers)
        assert r.json()["error"]["code"] == "invalid_api_key"
    for headers in [{"Authorization": "Bearer sekrit"}, {"X-Api-Key": "sekrit"}]:
        r = call(secure_server, method, path, headers)
        assert r.status_code == (404 if path == "/no/such/route" else 200), (path, r.text)


def test_c6_openai_client_with_and_without_key(secure_server):
    with pytest.raises(openai.AuthenticationError):
        secure_server.client(api_key="nope").models.list()
    assert secure_server.client(api_key="sekrit").models.list().data[0].id == "gemma4-tiny-chat"


def test_c6_cors_only_for_the_configured_origin(secure_server, chat_server):
    pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    r = options(secure_server.url + "/v1/chat/completions", headers={"Origin": "http://evil.example", **pre})
    assert "access-control-allow-origin" not in r.headers
    r = options(secure_server.url + "/v1/chat/completions", headers={"Origin": "http://allowed.example", **pre})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "http://allowed.example"
    r = get(secure_server.url + "/v1/models",
                  headers={"Origin": "http://allowed.example", "Authorization": "Bearer sekrit"})
    assert r.headers["access-control-allow-origin"] == "http://allowed.example"
    r = get(secure_server.url + "/v1/models",
                  headers={"Origin": "http://evil.example", "Authorization": "Bearer sekrit"})
    assert "access-control-allow-origin" not in r.headers
    # Without --cors-origin: no CORS headers at all.
    r = options(chat_server.url + "/v1/chat/completions", headers={"Origin": "http://evil.example", **pre})
    assert "access-control-allow-origin" not in r.headers
    r = get(chat_server.url + "/v1/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_c6_binds_loopback_by_default(chat_server):
    assert "listening on http://127.0.0.1:" in chat_server.log_path.read_text()


def test_c6_public_address_needs_a_key():
    p = subprocess.run([str(gemma_bin()), "serve", "-m", str(CHAT_MODEL), "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "--api-key" in p.stderr


def test_c6_foreign_host_header_refused(chat_server):
    r = get(chat_server.url + "/v1/models", {"Host": "attacker.example"})
    assert r.status_code == 403
    for host in ["localhost", f"127.0.0.1:{chat_server.port}", "[::1]:80"]:
        assert get(chat_server.url + "/v1/models", {"Host": host}).status_code == 200


def test_unloadable_model_exits_with_an_error(tmp_path):
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    p = subprocess.run([str(gemma_bin()), "serve", "-m", str(bad), "--port", "0"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode != 0
    assert "error:" in p.stderr
