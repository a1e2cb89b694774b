// Differential check against the reference Rust crate: tests/data/safetensors/corpus.jsonl holds
// ~300 file images (row A5 classes, valid files, mutations, truncations) with the decision the
// Rust crate made on each (scripts/gen_safetensors_corpus.py). The C++ reader must agree on every
// case, except the listed ones where it is deliberately stricter.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/safetensors_reader.h"

namespace ge::safetensors {
namespace {

struct CorpusCase {
  std::string name;
  std::vector<uint8_t> image;
  bool rust_accepts = false;
  std::string stricter;  // why this reader rejects what the reference accepts; empty otherwise
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::vector<CorpusCase> load_corpus() {
  const std::string path = std::string(GE_TEST_DATA_DIR) + "/safetensors/corpus.jsonl";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<CorpusCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const nlohmann::json j = nlohmann::json::parse(line);
    CorpusCase c;
    c.name = j.at("name").get<std::string>();
    const std::string hex = j.at("hex").get<std::string>();
    EXPECT_EQ(hex.size() % 2, 0u) << c.name;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      const int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
      EXPECT_TRUE(hi >= 0 && lo >= 0) << c.name;
      c.image.push_back(static_cast<uint8_t>(hi * 16 + lo));
    }
    c.rust_accepts = j.at("rust").get<std::string>() == "accept";
    c.stricter = j.at("stricter").get<std::string>();
    cases.push_back(std::move(c));
  }
  return cases;
}

TEST(SafetensorsDifferential, MatchesTheReferenceCrateDecisions) {
  const std::vector<CorpusCase> cases = load_corpus();
  ASSERT_GE(cases.size(), 200u);
  size_t rust_accepts = 0, stricter = 0;
  std::vector<std::string> mismatches;
  for (const CorpusCase& c : cases) {
    // Exactly sized heap copy so ASan sees any over-read.
    std::vector<uint8_t> copy = c.image;
    Result<SafetensorsFile> r = SafetensorsFile::parse(copy.empty() ? nullptr : copy.data(), copy.size());
    rust_accepts += c.rust_accepts;
    if (!c.stricter.empty()) {
      ++stricter;
      // Deliberate: the reference accepts, this reader refuses with a reason.
      EXPECT_TRUE(c.rust_accepts) << c.name;
      if (r.is_ok()) mismatches.push_back(c.name + " (accepted, expected a stricter reject: " + c.stricter + ")");
      continue;
    }
    if (r.is_ok() != c.rust_accepts) {
      mismatches.push_back(c.name + (r.is_ok() ? " (accepted; reference rejects)"
                                               : " (rejected: " + r.status().message() + "; reference accepts)"));
    }
  }
  EXPECT_TRUE(mismatches.empty()) << mismatches.size() << " mismatches, first: " << mismatches.front();
  // The corpus exercises both decisions.
  EXPECT_GE(rust_accepts, 20u);
  EXPECT_GE(cases.size() - rust_accepts, 150u);
  EXPECT_LE(stricter, 12u) << "each deliberate difference is listed in the generator";
}

}  // namespace
}  // namespace ge::safetensors
