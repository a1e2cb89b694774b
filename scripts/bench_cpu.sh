#!/usr/bin/env bash
# CPU benchmark on the real model: memory read bandwidth (dev/cpu/membw.cc), then `gemma bench` and
# llama.cpp's llama-bench interleaved (pp128, pp512, tg128 at 1 and 2 threads, several rounds), and
# a markdown table with decode as a fraction of the read bandwidth (model bytes per token / time).
#   scripts/bench_cpu.sh [--model PATH] [--rounds 3] [--threads "1 2"] [--pp "128 512"] [--tg 128]
#                        [--reps 1] [--llama-bench PATH] [--build DIR | --gemma BIN] [--gemma-args "..."]
# Without --gemma it configures BUILD (default build-bench: Release, -march=native) and builds gemma.
# Run it on a quiet machine: every number shares the cores with whatever else runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model="${GE_TEST_MODEL:-/work/models/gemma-3-270m-q4_k_m.gguf}"
rounds=3
threads="1 2"
pp="128 512"
tg="128"
reps=1
llama_bench="${LLAMA_BENCH:-/tmp/lcpp/llama_cpp_python-0.3.36/vendor/llama.cpp/build/bin/llama-bench}"
build="${BUILD:-$root/build-bench}"
gemma_args=""
gemma_bin=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --pp) pp="$2"; shift 2 ;;
    --tg) tg="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --llama-bench) llama_bench="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --gemma) gemma_bin="$2"; shift 2 ;;
    --gemma-args) gemma_args="$2"; shift 2 ;;
    -h|--help) sed -n 2,8p "$0"; exit 0 ;;
    *) echo "bench_cpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -r "$model" ]] || { echo "bench_cpu.sh: cannot read model $model" >&2; exit 1; }
out="$(mktemp -d /tmp/bench_cpu.XXXXXX)"

# Build: gemma (Release, tuned for this machine as llama.cpp's build is) and the bandwidth program.
if [[ -z "$gemma_bin" ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGE_NATIVE=ON -DGE_BUILD_TESTS=OFF > /dev/null
  cmake --build "$build" -j"$(nproc)" --target gemma > /dev/null
  gemma_bin="$build/gemma"
fi
[[ -x "$gemma_bin" ]] || { echo "bench_cpu.sh: no gemma binary at $gemma_bin" >&2; exit 1; }
"${CXX:-c++}" -O3 -march=native -std=c++20 -pthread "$root/dev/cpu/membw.cc" -o "$out/membw"
have_llama=1
[[ -x "$llama_bench" ]] || { echo "note: no llama-bench at $llama_bench; ours only" >&2; have_llama=0; }

csv() { echo "$1" | tr ' ' ','; }
echo "model: $model" >&2
"$out/membw" --threads "$(csv "$threads")" > "$out/membw.txt"
cat "$out/membw.txt" >&2
for ((r = 1; r <= rounds; r++)); do
  for t in $threads; do
    echo "round $r, $t thread(s): ours" >&2
    # shellcheck disable=SC2086
    "$gemma_bin" bench -m "$model" -p "$(csv "$pp")" -n "$(csv "$tg")" -t "$t" -r "$reps" -o json $gemma_args \
      > "$out/ours_r${r}_t${t}.json" 2> "$out/ours_r${r}_t${t}.log"
    if [[ $have_llama == 1 ]]; then
      echo "round $r, $t thread(s): llama.cpp" >&2
      "$llama_bench" -m "$model" -p "$(csv "$pp")" -n "$(csv "$tg")" -t "$t" -r "$reps" -o json \
        > "$out/llama_r${r}_t${t}.json" 2> "$out/llama_r${r}_t${t}.log"
    fi
  done
done

python3 - "$out" "$model" <<'PY'
import glob, json, os, re, statistics, sys
out, model = sys.argv[1], sys.argv[2]
bw = {}
for line in open(os.path.join(out, "membw.txt")):
    m = re.match(r"threads (\d+): ([\d.]+) GB/s", line)
    if m:
        bw[int(m.group(1))] = float(m.group(2))
def load(pattern, who):
    rows = {}
    size = 0
    for path in sorted(glob.glob(os.path.join(out, pattern))):
        for e in json.load(open(path)):
            if who == "ours":
                test = e["test"]
            else:
                test = f"pp{e['n_prompt']}" if e.get("n_prompt", 0) > 0 else f"tg{e['n_gen']}"
            rows.setdefault((test, int(e["n_threads"])), []).append(float(e["avg_ts"]))
            size = size or int(e.get("model_size", 0))
    return rows, size
ours, ours_size = load("ours_*.json", "ours")
llama, _ = load("llama_*.json", "llama")
size = ours_size or os.path.getsize(model)
print(f"model: {os.path.basename(model)}, {size / 2**20:.1f} MiB of weights read per decoded token")
print("read bandwidth: " + ", ".join(f"{t} thread(s) {v:.1f} GB/s" for t, v in sorted(bw.items())))
print()
print("| test | threads | ours t/s | llama.cpp t/s | ours / llama.cpp | ours decode GB/s | % of read bandwidth |")
print("| ---: | ------: | -------: | ------------: | ---------------: | ---------------: | ------------------: |")
def key(k):
    return (0 if k[0].startswith("pp") else 1, int(k[0][2:]), k[1])
for k in sorted(set(ours) | set(llama), key=key):
    o = ours.get(k, [])
    l = llama.get(k, [])
    om = statistics.median(o) if o else None
    lm = statistics.median(l) if l else None
    ratio = f"{om / lm:.2f}" if om and lm else "-"
    gbs = pct = "-"
    if k[0].startswith("tg") and om:
        g = om * size / 1e9
        gbs = f"{g:.1f}"
        if k[1] in bw:
            pct = f"{100 * g / bw[k[1]]:.0f}%"
    fmt = lambda v, s: f"{v:.1f} (n={len(s)}, {min(s):.1f}–{max(s):.1f})" if v else "-"
    print(f"| {k[0]} | {k[1]} | {fmt(om, o)} | {fmt(lm, l)} | {ratio} | {gbs} | {pct} |")
print()
print(f"medians over rounds; raw JSON in {out}")
PY
