// `gemma synth`: a GGUF of random weights with a published model's exact shapes, llama.cpp tensor
// names and metadata, written tensor by tensor (bounded memory) for benchmarks of models whose real
// weights are out of reach. Any engine that loads the architecture can load the file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"
#include "quant/quant_type.h"

namespace ge {

struct SynthOptions {
  std::string preset = "gemma-4-31b";  // a name from preset_names()
  // Encoding of every matrix: Q4_0, Q8_0, Q4_K or Q6_K. As llama.cpp does, K-quants fall back for
  // rows that are not a multiple of 256: Q4_K → Q5_0, Q6_K → Q8_0.
  QuantType quant = QuantType::kQ4_0;
  int32_t layers = 0;          // 0 = the preset's layer count, else its first `layers` layers
  std::string tokenizer_gguf;  // copy every tokenizer.* key from this GGUF; empty = minimal vocab
  uint64_t seed = 0;
  bool vocab_only = false;  // metadata and tokenizer only, no tensors (as llama.cpp's vocab files)
  bool force = false;       // replace an existing output
  int n_threads = 0;        // random generation threads; 0 = hardware concurrency
};

struct SynthReport {
  std::string output_file;
  uint64_t output_bytes = 0;
  int64_t n_tensors = 0;
  int64_t vocab_tokens = 0;  // tokens of the tokenizer written
  std::string tokenizer_note;
};

// Writes `path` through a temporary file in the same folder, renamed when complete. At most one
// chunk of one tensor (a few MiB per thread) is in memory. on_progress(bytes_done, bytes_total).
Result<SynthReport> write_synthetic_gguf(const std::string& path, const SynthOptions& options,
                                         const std::function<void(uint64_t, uint64_t)>& on_progress = {});

}  // namespace ge
