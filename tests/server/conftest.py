# Fixtures for the server tests: start `gemma serve` on the tiny Gemma 4 models of
# tests/server/data (and on the real model when GE_TEST_MODEL is set), wait until /health is 200.
"""pytest fixtures: servers started from the gemma binary (GEMMA_BIN, else build/gemma)."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
CHAT_MODEL = DATA / "gemma4-tiny-chat.gguf"
RANDOM_MODEL = DATA / "gemma4-tiny-random.gguf"


class Response:
    """The parts of an HTTP response the tests look at (plain http.client: no extra dependency)."""

    def __init__(self, status: int, headers, content: bytes):
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers}
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


def request(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 60) -> Response:
    """One request on a fresh connection; `body` is bytes/str (sent as is) or an object (sent as JSON)."""
    u = urlsplit(url)
    headers = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, u.path or "/", body=body, headers=headers)
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def gemma_bin() -> Path:
    p = Path(os.environ.get("GEMMA_BIN", ROOT / "build" / "gemma"))
    if not p.is_file():
        pytest.fail(f"gemma binary not found at {p} (build it, or set GEMMA_BIN)")
    return p


class Server:
    """One `gemma serve` process on a free loopback port."""

    def __init__(self, model: Path | None, *args: str, log_dir: Path, name: str, ready: bool = True):
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "w")
        model_args = ["-m", str(model)] if model is not None else []  # None: --synthetic in args
        cmd = [str(gemma_bin()), "serve", *model_args, "--port", "0", "-t", "2", *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = self._wait_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if ready:
            self.wait_ready()

    def _wait_port(self, timeout: float = 30) -> int:
        end = time.time() + timeout
        while time.time() < end:
            m = re.search(r"listening on http://[^:]+:(\d+)", self.log_path.read_text())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                pytest.fail(f"gemma serve exited early:\n{self.log_path.read_text()}")
            time.sleep(0.02)
        pytest.fail("gemma serve did not report its port")

    def wait_ready(self, timeout: float = 120) -> None:
        end = time.time() + timeout
        while time.time() < end:
            try:
                if request("GET", self.url + "/health", timeout=2).status_code == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                pytest.fail(f"gemma serve exited:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        pytest.fail("gemma serve did not become healthy")

    def client(self, api_key: str = "unused", timeout: float = 60) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=timeout)

    def post(self, path: str, body, headers: dict | None = None, timeout: float = 60) -> Response:
        return request("POST", self.url + path, body, headers, timeout)

    def get(self, path: str, headers: dict | None = None, timeout: float = 30) -> Response:
        return request("GET", self.url + path, None, headers, timeout)

    def metric(self, name: str) -> float:
        text = self.get("/metrics").text
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        assert m, f"metric {name} missing"
        return float(m.group(1))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def chat_server(log_dir):
    """Scripted tiny model (see scripts/make_tiny_chat_model.py): known replies."""
    s = Server(CHAT_MODEL, "--slots", "4", "--ctx", "512", log_dir=log_dir, name="chat")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def random_server(log_dir):
    """Random-weight tiny model with 32 slots: real arithmetic, batching, sampling."""
    s = Server(RANDOM_MODEL, "--slots", "32", "--queue", "64", "--ctx", "512", "--chunk", "64",
               log_dir=log_dir, name="random")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def one_slot_server(log_dir):
    """One slot, one queue place: admission and cancellation."""
    s = Server(RANDOM_MODEL, "--slots", "1", "--queue", "1", "--ctx", "32768", log_dir=log_dir, name="one-slot")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def secure_server(log_dir):
    """API key, CORS for one origin, a small body limit."""
    s = Server(CHAT_MODEL, "--slots", "2", "--ctx", "512", "--api-key", "sekrit", "--cors-origin",
               "http://allowed.example", "--max-body", "65536", log_dir=log_dir, name="secure")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def real_server(log_dir):
    """Gemma 3 270M (GE_TEST_MODEL); skipped when the variable is unset."""
    path = os.environ.get("GE_TEST_MODEL")
    if not path:
        pytest.skip("GE_TEST_MODEL is not set")
    if not Path(path).is_file():
        pytest.fail(f"GE_TEST_MODEL={path} is not a readable file")
    s = Server(Path(path), "--slots", "4", "--ctx", "1024", log_dir=log_dir, name="real")
    yield s
    s.stop()


def special_ids(server: Server) -> dict[str, int]:
    """Ids of the Gemma 4 end-of-generation tokens (to bias them away in long runs)."""
    out = {}
    for t in ["<eos>", "<turn|>", "<|tool_response>"]:
        r = server.post("/tokenize", {"content": t, "parse_special": True})
        ids = r.json()["tokens"]
        assert len(ids) == 1, (t, ids)
        out[t] = ids[0]
    return out
