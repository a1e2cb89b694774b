#!/usr/bin/env python3
"""Quality table for `gemma quantize`: per-tensor SNR and end-to-end KL divergence, every method and recipe.

For each source model (an unquantized HF directory) it runs
  gemma quantize -i SRC -o OUT --format torchao --method {minmax,hqq} --recipe {default,sensitive} --stats S
  gemma quantize -i SRC -o OUT.gguf --format gguf --type {q4_0,q8_0,q4_k,q6_k} --stats S
  gemma quantize --compare SRC -i OUT ... --stats K      (KL(P_src || P_quant) on the reference CPU backend)
and prints one markdown table (model, format, recipe, method/type, size, mean/min SNR, mean/max KL, top-1).

Sources:
  --golden NAME ...   tiny golden checkpoints under tests/data/golden (fp32), scored on their tokens.json
  --gguf FILE         a GGUF (e.g. Gemma 3 270M Q4_K_M) dequantized to an F32 HF directory first
                      (`gemma quantize --dequantize-gguf`), scored on the first --max-tokens of
                      --tokens-json (default: the 776-token text of tests/data/real/gemma3_270m_reference.json)

Needs only the gemma binary and Python's standard library.
Usage: quant_quality.py --gemma build/gemma --work /tmp/qq [--golden gemma3_tiny ...] [--gguf F]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCHAO = [(r, m) for r in ("default", "sensitive") for m in ("minmax", "hqq")]
GGUF_TYPES = ["q4_0", "q8_0", "q4_k", "q6_k"]


def run(cmd: list[str]) -> str:
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"quant_quality: command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    print(f"  [{time.time() - t0:6.1f} s] {' '.join(cmd[1:4])} ...", file=sys.stderr)
    return p.stdout


def evaluate(gemma: str, name: str, src: Path, work: Path, compare_args: list[str], threads: str) -> list[dict]:
    rows = []
    variants = [("torchao", r, m) for r, m in TORCHAO] + [("gguf", "default", t) for t in GGUF_TYPES]
    for fmt, recipe, mt in variants:
        tag = f"{name}-{fmt}-{recipe}-{mt}"
        out = work / (tag + (".gguf" if fmt == "gguf" else ""))
        stats, kl = work / f"{tag}.stats.json", work / f"{tag}.kl.json"
        cmd = [gemma, "quantize", "-i", str(src), "-o", str(out), "--format", fmt, "--recipe", recipe,
               "--force", "--quiet", "--stats", str(stats), "-t", threads]
        cmd += ["--method", mt] if fmt == "torchao" else ["--type", mt]
        run(cmd)
        run([gemma, "quantize", "--compare", str(src), "-i", str(out), "--stats", str(kl), "-t", threads] + compare_args)
        s, k = json.loads(stats.read_text()), json.loads(kl.read_text())
        rows.append({"model": name, "format": fmt, "recipe": recipe, "variant": mt,
                     "bytes": s["output_bytes"], "mean_snr_db": s["mean_snr_db"], "min_snr_db": s["min_snr_db"],
                     "seconds": s["seconds"], "peak_rss_mb": s["peak_rss_mb"], "mean_kl": k["mean_kl"],
                     "max_kl": k["max_kl"], "top1": k["top1_agreement"], "positions": k["positions"]})
    return rows


def table(rows: list[dict]) -> str:
    head = ("| model | format | recipe | method / type | size (MB) | mean SNR (dB) | min SNR (dB) | mean KL (nats) "
            "| max KL | top-1 agree | quantize time (s) |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = [f"| {r['model']} | {r['format']} | {r['recipe']} | {r['variant']} | {r['bytes'] / 1e6:.2f} | "
             f"{r['mean_snr_db']:.2f} | {r['min_snr_db']:.2f} | {r['mean_kl']:.5f} | {r['max_kl']:.4f} | "
             f"{100 * r['top1']:.1f} % | {r['seconds']:.1f} |" for r in rows]
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gemma", default=str(ROOT / "build" / "gemma"))
    ap.add_argument("--work", required=True, help="scratch directory for the outputs")
    ap.add_argument("--golden", nargs="*", default=[])
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--tokens-json", default=str(ROOT / "tests" / "data" / "real" / "gemma3_270m_reference.json"),
                    help="token ids ({\"tokens\": [...]}) scored with --gguf")
    ap.add_argument("--max-tokens", default="256")
    ap.add_argument("--threads", default="0")
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for g in args.golden:
        src = ROOT / "tests" / "data" / "golden" / g
        rows += evaluate(args.gemma, g, src, work, ["--tokens-json", str(src / "tokens.json")], args.threads)
    if args.gguf:
        name = Path(args.gguf).stem
        src = work / f"{name}-f32"
        run([args.gemma, "quantize", "--dequantize-gguf", "-i", args.gguf, "-o", str(src), "--force"])
        rows += evaluate(args.gemma, name, src, work,
                         ["--tokens-json", args.tokens_json, "--max-tokens", args.max_tokens, "--chunk", args.max_tokens], args.threads)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
