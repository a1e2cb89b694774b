// `gemma synth`: writes a GGUF of random weights with a published model's shapes (llama.cpp names
// and keys), for loading and speed tests of models whose real weights are out of reach.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "model/model_presets.h"
#include "model/synthetic_gguf.h"

namespace ge::cli {

namespace {

Result<QuantType> parse_synth_quant(const std::string& q) {
  if (q == "q4_0") return QuantType::kQ4_0;
  if (q == "q8_0") return QuantType::kQ8_0;
  if (q == "q4_k") return QuantType::kQ4_K;
  if (q == "q6_k") return QuantType::kQ6_K;
  return invalid_argument("gemma synth: --quant must be q4_0, q8_0, q4_k or q6_k, got '" + q + "'");
}

}  // namespace

int cmd_synth(int argc, char** argv) {
  Args a("gemma synth",
         "gemma synth --preset NAME --quant q4_0|q8_0|q4_k|q6_k [--layers N] [--tokenizer FILE.gguf] [--seed S] "
         "[--vocab-only] -o OUT.gguf");
  a.option("preset", "", "NAME", "published shape: gemma-4-31b, gemma-3-270m, gemma-3-1b", "gemma-4-31b");
  a.option("quant", "", "Q", "encoding of every matrix: q4_0, q8_0, q4_k, q6_k", "q4_0");
  a.option("layers", "", "N", "keep the first N layers (0 = all)", "0");
  a.option("tokenizer", "", "FILE.gguf", "copy the tokenizer.* keys of this GGUF (default: a minimal vocabulary)");
  a.option("seed", "", "S", "random seed", "0");
  a.option("threads", "t", "N", "generation threads (0 = all cores)", "0");
  a.option("output", "o", "OUT.gguf", "output file");
  a.flag("vocab-only", "write the metadata and tokenizer only (no tensors)");
  a.flag("force", "replace an existing output file");
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  if (!a.positional().empty()) return fail(invalid_argument("gemma synth: unexpected argument '" + a.positional()[0] + "'"));
  if (!a.has("output")) return fail(invalid_argument("gemma synth: -o OUT.gguf is required"));
  SynthOptions o;
  o.preset = a.str("preset");
  auto q = parse_synth_quant(a.str("quant"));
  if (!q.is_ok()) return fail(q.status());
  o.quant = *q;
  auto layers = a.integer("layers", 0, 1 << 16);
  if (!layers.is_ok()) return fail(layers.status());
  o.layers = static_cast<int32_t>(*layers);
  auto seed = a.integer("seed", 0, INT64_MAX);
  if (!seed.is_ok()) return fail(seed.status());
  o.seed = static_cast<uint64_t>(*seed);
  auto threads = a.integer("threads", 0, 1024);
  if (!threads.is_ok()) return fail(threads.status());
  o.n_threads = static_cast<int>(*threads);
  o.tokenizer_gguf = a.str("tokenizer");
  o.vocab_only = a.on("vocab-only");
  o.force = a.on("force");

  const auto t0 = std::chrono::steady_clock::now();
  int last_pct = -1;
  const bool tty = isatty(STDERR_FILENO) != 0;  // a progress line only where someone watches
  auto r = write_synthetic_gguf(a.str("output"), o, [&](uint64_t done, uint64_t total) {
    if (!tty) return;
    const int pct = total > 0 ? static_cast<int>(100 * done / total) : 100;
    if (pct / 5 != last_pct / 5) {
      std::fprintf(stderr, "\rsynth: %3d%%", pct);
      last_pct = pct;
    }
  });
  if (last_pct >= 0) std::fprintf(stderr, "\n");
  if (!r.is_ok()) return fail(r.status());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s: %lld tensors, %.2f GiB, %s, %.1f s\n", r->output_file.c_str(),
              static_cast<long long>(r->n_tensors), static_cast<double>(r->output_bytes) / (1u << 30),
              r->tokenizer_note.c_str(), secs);
  return 0;
}

}  // namespace ge::cli
