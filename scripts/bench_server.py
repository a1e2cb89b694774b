#!/usr/bin/env python3
# Load test for `gemma serve` over loopback: N concurrent streaming completions of a fixed length,
# reporting aggregate tokens/s and p50/p99 time to first token and inter-token latency per level.
"""Bounded streaming load against gemma serve (standard library only).

Starts `gemma serve` itself (--gemma with --model, or --synthetic PRESET --tokenizer GGUF for random
weights of a published shape) or uses a running server (--url). For each concurrency level, `level`
client threads send requests back to back for --level-seconds (a request still running at the
deadline is cut off: its connection is closed and the server cancels it), at least one each. Every
request asks for exactly --max-tokens tokens (ignore_eos) after a prompt of exactly --prompt-tokens
token ids. Times are measured on the client:

  TTFT   request sent -> first chunk carrying text
  ITL    gap between consecutive chunks carrying text (a chunk is usually one token)
  tok/s  completion tokens received in the level / wall time of the level

Examples:
  python3 scripts/bench_server.py --gemma build/gemma --model /work/models/gemma-3-270m-q4_k_m.gguf \\
      --levels 1,4,16,64 --max-tokens 64 --json bench.json
  python3 scripts/bench_server.py --gemma build/gemma --synthetic gemma-4-31b --quant q4_0 --backend cuda \\
      --tokenizer gemma-3-270m-q4_k_m.gguf --slots 64 --levels 1,4,16,64 --level-seconds 40
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


def one_request(url: str, prompt: list[int], max_tokens: int, deadline: float) -> dict:
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, "ignore_eos": True}
    t0 = time.perf_counter()
    conn, r = post(url, "/v1/completions", body, timeout=max(1.0, deadline - t0 + 5))
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    times, usage, cut = [], None, False
    try:
        while True:
            if time.perf_counter() > deadline:
                cut = True  # closing the connection cancels the request on the server
                break
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
    finally:
        conn.close()
    t1 = time.perf_counter()
    # Tokens: the server's count when the request ended, else the text chunks received.
    n = usage["completion_tokens"] if usage else len(times)
    return {"ttft": (times[0] - t0) if times else None, "itl": [b - a for a, b in zip(times, times[1:])],
            "tokens": n, "e2e": t1 - t0, "cut": cut}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def engine_counters(url: str) -> dict[str, float]:
    """Steps and time inside forward passes, from /metrics (the rest of a step is sampling and I/O)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out = {}
    for name in ("gemma_batch_steps_total", "gemma_engine_busy_seconds_total", "gemma_batch_tokens_total"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        out[name] = float(m.group(1)) if m else float("nan")
    return out


def run_level(url: str, level: int, seconds: float, max_tokens: int, prompts: list[list[int]]) -> dict:
    results, errors, lock = [], [], threading.Lock()
    before = engine_counters(url)
    next_index = [0]
    t0 = time.perf_counter()
    deadline = t0 + seconds

    def worker():
        first = True
        while first or time.perf_counter() < deadline:
            first = False
            with lock:
                i = next_index[0]
                next_index[0] += 1
            try:
                res = one_request(url, prompts[i % len(prompts)], max_tokens, deadline)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                results.append(res)

    threads = [threading.Thread(target=worker) for _ in range(level)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in results)
    ttft = [r["ttft"] for r in results if r["ttft"] is not None]
    itl = [x for r in results for x in r["itl"]]
    done = [r for r in results if not r["cut"]]
    after = engine_counters(url)
    steps = after["gemma_batch_steps_total"] - before["gemma_batch_steps_total"]
    busy = after["gemma_engine_busy_seconds_total"] - before["gemma_engine_busy_seconds_total"]
    batch_tokens = after["gemma_batch_tokens_total"] - before["gemma_batch_tokens_total"]
    return {"steps": steps, "forward_ms_per_step": 1000 * busy / steps if steps else float("nan"),
            "wall_ms_per_step": 1000 * wall / steps if steps else float("nan"),
            "tokens_per_step": batch_tokens / steps if steps else float("nan"),
            **{"concurrency": level, "requests": len(results) + len(errors), "completed": len(done),
            "cut_at_deadline": len(results) - len(done), "errors": len(errors),
            "tokens": tokens, "wall_s": wall, "tok_per_s": tokens / wall if wall > 0 else 0.0,
            "ttft_p50_ms": 1000 * pct(ttft, 50), "ttft_p99_ms": 1000 * pct(ttft, 99),
            "itl_p50_ms": 1000 * pct(itl, 50), "itl_p99_ms": 1000 * pct(itl, 99),
            "tokens_per_completed_request": statistics.mean(r["tokens"] for r in done) if done else 0,
            "first_error": errors[0] if errors else None}}


def make_prompts(url: str, n_tokens: int, count: int) -> list[list[int]]:
    """`count` distinct prompts of exactly n_tokens ids: <bos> then ordinary words' tokens."""
    conn, r = post(url, "/tokenize", {"content": " ".join(WORDS * 8), "add_special": False})
    ids = json.loads(r.read())["tokens"]
    conn.close()
    conn, r = post(url, "/tokenize", {"content": "", "add_special": True})
    bos = json.loads(r.read())["tokens"][:1]
    conn.close()
    body = n_tokens - len(bos)
    out = []
    for i in range(count):
        rot = ids[i % len(ids):] + ids[:i % len(ids)]  # distinct prompts: no shared cached prefix
        out.append(bos + (rot * (body // max(1, len(rot)) + 1))[:body])
    return out


def start_server(args, slots: int) -> tuple[subprocess.Popen, str]:
    source = (["-m", args.model] if args.model else
              ["--synthetic", args.synthetic, "--quant", args.quant, "--tokenizer", args.tokenizer])
    cmd = [args.gemma, "serve", *source, "--backend", args.backend, "--port", "0", "--slots", str(slots),
           "--queue", str(4 * slots), "--ctx", str(args.ctx), "-t", str(args.threads), "--quiet"]
    if args.chunk:
        cmd += ["--chunk", str(args.chunk)]
    print("starting:", " ".join(cmd), file=sys.stderr)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    deadline = time.time() + args.load_timeout
    timer = threading.Timer(args.load_timeout, proc.kill)  # a load that hangs must not hang the run
    timer.start()
    try:
        for line in proc.stderr:
            sys.stderr.write("  server: " + line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                port = int(m.group(1))
            if "ready on" in line:
                break
    finally:
        timer.cancel()
    if port is None or proc.poll() is not None or time.time() > deadline:
        proc.kill()
        raise SystemExit("gemma serve did not become ready")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (else --gemma starts one)")
    ap.add_argument("--gemma", default="build/gemma")
    ap.add_argument("--model", help="model file for the server")
    ap.add_argument("--synthetic", help="instead of --model: random weights of this preset (e.g. gemma-4-31b)")
    ap.add_argument("--quant", default="q4_0", help="--synthetic encoding")
    ap.add_argument("--tokenizer", help="--synthetic: GGUF with the preset's vocabulary size")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--slots", type=int, default=0, help="server slots (0 = the largest level)")
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--level-seconds", type=float, default=40, help="time bound of each level")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=0, help="server --chunk (0 = its default)")
    ap.add_argument("--threads", type=int, default=0, help="server CPU threads (0 = all)")
    ap.add_argument("--load-timeout", type=float, default=300, help="seconds the server may take to load")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    if args.prompt_tokens + args.max_tokens > args.ctx:
        raise SystemExit("--prompt-tokens + --max-tokens must fit --ctx")
    proc = None
    url = args.url
    if url is None:
        if bool(args.model) == bool(args.synthetic):
            raise SystemExit("give --url, --model or --synthetic")
        if args.synthetic and not args.tokenizer:
            raise SystemExit("--synthetic needs --tokenizer")
        proc, url = start_server(args, args.slots or max(levels))
    rows = []
    try:
        prompts = make_prompts(url, args.prompt_tokens, 4 * max(levels))
        one_request(url, prompts[0][:8], 4, time.perf_counter() + 120)  # warm-up
        for level in levels:
            row = run_level(url, level, args.level_seconds, args.max_tokens, prompts)
            rows.append(row)
            print(f"concurrency {level:3d}: {row['tok_per_s']:8.1f} tok/s  TTFT p50 {row['ttft_p50_ms']:8.1f} ms "
                  f"p99 {row['ttft_p99_ms']:8.1f} ms  ITL p50 {row['itl_p50_ms']:7.1f} ms p99 {row['itl_p99_ms']:7.1f} ms"
                  f"  ({row['completed']} done, {row['cut_at_deadline']} cut, {row['errors']} errors)", file=sys.stderr)
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    source = args.model or (f"{args.synthetic} (synthetic {args.quant})" if args.synthetic else args.url)
    print(f"gemma serve load test: {source}, backend {args.backend}, prompt {args.prompt_tokens} tokens, "
          f"max_tokens {args.max_tokens} (ignore_eos), {args.level_seconds:g} s per level")
    print()
    print("| streams | requests | completed | tokens | wall s | aggregate tok/s | TTFT p50 ms | TTFT p99 ms "
          "| ITL p50 ms | ITL p99 ms | step ms (forward) | tokens/step |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['requests']} | {r['completed']} | {r['tokens']} | {r['wall_s']:.1f} | "
              f"{r['tok_per_s']:.1f} | {r['ttft_p50_ms']:.0f} | {r['ttft_p99_ms']:.0f} | {r['itl_p50_ms']:.1f} | "
              f"{r['itl_p99_ms']:.1f} | {r['wall_ms_per_step']:.1f} ({r['forward_ms_per_step']:.1f}) | "
              f"{r['tokens_per_step']:.1f} |")
    result = {"args": vars(args), "results": rows}
    print()
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
