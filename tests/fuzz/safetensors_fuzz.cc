// libFuzzer target for the safetensors reader and the torchao metadata on top of it: any input
// must be accepted with in-bounds views or rejected with a Status, never crash, leak or over-read.
//
// Build and run (from the repository root; not built by CMake yet):
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
//     -Isrc tests/fuzz/safetensors_fuzz.cc src/formats/safetensors_reader.cc src/formats/torchao_meta.cc \
//     src/core/status.cc src/core/mapped_file.cc -o /tmp/safetensors_fuzz
//   mkdir -p /tmp/st_corpus && cp tests/data/safetensors/*.safetensors /tmp/st_corpus/
//   /tmp/safetensors_fuzz -max_total_time=60 -max_len=8192 /tmp/st_corpus
// Without -fsanitize=fuzzer, define GE_FUZZ_REPLAY_MAIN to get a driver that replays files given
// on the command line (for reproducing a crash under a debugger).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "formats/safetensors_reader.h"
#include "formats/torchao_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ge::safetensors;
  ge::Result<SafetensorsFile> file = SafetensorsFile::parse(data, size);
  if (!file.is_ok()) return 0;
  // Accepted: every view must lie inside the input (ASan reports any byte outside it).
  unsigned sum = 0;
  for (const TensorInfo& t : file->tensors()) {
    if (t.nbytes > 0) sum += t.data[0] + t.data[t.nbytes - 1];
    if (file->find(t.name) != &t) __builtin_trap();
  }
  ge::Result<std::vector<TorchaoTensor>> tao = read_torchao_tensors(file.value());
  if (tao.is_ok()) {
    for (const TorchaoTensor& t : tao.value()) {
      for (const auto& [part, info] : t.parts) {
        if (info == nullptr || file->find(info->name) != info) __builtin_trap();
      }
    }
  }
  return static_cast<int>(sum & 0);
}

#ifdef GE_FUZZ_REPLAY_MAIN
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::FILE* f = std::fopen(argv[i], "rb");
    if (f == nullptr) {
      std::fprintf(stderr, "cannot open %s\n", argv[i]);
      return 1;
    }
    std::vector<uint8_t> bytes;
    uint8_t buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    std::fclose(f);
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
    std::printf("%s: ok\n", argv[i]);
  }
  return 0;
}
#endif
