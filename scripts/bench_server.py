#!/usr/bin/env python3
# Load test for `gemma serve` over loopback: N concurrent streaming completions of a fixed length,
# reporting aggregate tokens/s and p50/p99 time to first token and inter-token latency per level.
"""Bounded streaming load against gemma serve (standard library only).

Starts `gemma serve` itself (--gemma/--model) or uses a running server (--url). For each concurrency
level, `max(level, --min-requests)` requests are sent by `level` client threads; each asks for
exactly --max-tokens tokens (end-of-generation tokens are biased away) after a prompt of about
--prompt-words words. Times are measured on the client:

  TTFT   request sent -> first chunk carrying text
  ITL    gap between consecutive chunks carrying text (a chunk is usually one token)
  tok/s  completion tokens of the level / wall time of the level

Example:
  python3 scripts/bench_server.py --gemma build/gemma --model /work/models/gemma-3-270m-q4_k_m.gguf \\
      --levels 1,4,16,64 --max-tokens 64 --json bench.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing about rivers mountains "
         "and the long history of bread in old cities").split()


def post(url: str, path: str, body: dict, timeout: float = 600):
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    return conn, conn.getresponse()


def special_ids(url: str) -> list[int]:
    ids = []
    for t in ["<eos>", "<end_of_turn>", "<turn|>", "<|tool_response>"]:
        conn, r = post(url, "/tokenize", {"content": t, "parse_special": True})
        toks = json.loads(r.read())["tokens"]
        conn.close()
        if len(toks) == 1:
            ids.append(toks[0])
    return sorted(set(ids))


def one_request(url: str, prompt: str, max_tokens: int, bias: dict) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "logit_bias": bias}
    t0 = time.perf_counter()
    conn, r = post(url, "/v1/completions", body)
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    times, usage = [], None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        ev = json.loads(data)
        if ev.get("usage"):
            usage = ev["usage"]
        if ev.get("choices") and ev["choices"][0].get("text"):
            times.append(time.perf_counter())
    conn.close()
    t1 = time.perf_counter()
    n = usage["completion_tokens"] if usage else 0
    return {"ttft": (times[0] - t0) if times else None, "itl": [b - a for a, b in zip(times, times[1:])],
            "tokens": n, "e2e": t1 - t0}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def run_level(url: str, level: int, n_requests: int, max_tokens: int, prompt_words: int, bias: dict) -> dict:
    prompts = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(prompt_words)) + f" ({i})"
               for i in range(n_requests)]
    results, errors, lock = [], [], threading.Lock()
    next_index = [0]

    def worker():
        while True:
            with lock:
                i = next_index[0]
                next_index[0] += 1
            if i >= n_requests:
                return
            try:
                res = one_request(url, prompts[i], max_tokens, bias)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(level)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in results)
    ttft = [r["ttft"] for r in results if r["ttft"] is not None]
    itl = [x for r in results for x in r["itl"]]
    return {"concurrency": level, "requests": n_requests, "ok": len(results), "errors": len(errors),
            "tokens": tokens, "wall_s": wall, "tok_per_s": tokens / wall if wall > 0 else 0.0,
            "ttft_p50_ms": 1000 * pct(ttft, 50), "ttft_p99_ms": 1000 * pct(ttft, 99),
            "itl_p50_ms": 1000 * pct(itl, 50), "itl_p99_ms": 1000 * pct(itl, 99),
            "tokens_per_request": statistics.mean(r["tokens"] for r in results) if results else 0,
            "first_error": errors[0] if errors else None}


def start_server(gemma: str, model: str, slots: int, ctx: int, threads: int) -> tuple[subprocess.Popen, str]:
    cmd = [gemma, "serve", "-m", model, "--port", "0", "--slots", str(slots), "--queue", str(4 * slots),
           "--ctx", str(ctx), "-t", str(threads), "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "ready on" in line:
            break
    if port is None:
        proc.kill()
        raise SystemExit("gemma serve did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (else --gemma and --model start one)")
    ap.add_argument("--gemma", default="build/gemma")
    ap.add_argument("--model")
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--min-requests", type=int, default=4, help="requests per level at least")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-words", type=int, default=24)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="server CPU threads (0 = all)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    proc = None
    url = args.url
    if url is None:
        if not args.model:
            raise SystemExit("give --url or --model")
        proc, url = start_server(args.gemma, args.model, max(levels), args.ctx, args.threads)
    try:
        bias = {str(i): -100 for i in special_ids(url)}
        one_request(url, "warm up", 4, bias)
        rows = []
        for level in levels:
            row = run_level(url, level, max(level, args.min_requests), args.max_tokens, args.prompt_words, bias)
            rows.append(row)
            print(f"concurrency {level:3d}: {row['tok_per_s']:8.1f} tok/s  TTFT p50 {row['ttft_p50_ms']:8.1f} ms "
                  f"p99 {row['ttft_p99_ms']:8.1f} ms  ITL p50 {row['itl_p50_ms']:7.1f} ms p99 {row['itl_p99_ms']:7.1f} ms"
                  f"  ({row['ok']}/{row['requests']} ok)", file=sys.stderr)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=60)
    print("| streams | requests | tokens | wall s | aggregate tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['tokens']} | {r['wall_s']:.1f} | {r['tok_per_s']:.1f} | "
              f"{r['ttft_p50_ms']:.0f} | {r['ttft_p99_ms']:.0f} | {r['itl_p50_ms']:.1f} | {r['itl_p99_ms']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
