// Gemma tokenizer: SentencePiece-derived BPE with byte fallback, built from plain vocabulary data
// (GGUF metadata or an HF tokenizer.json), matching HF `tokenizers` token for token.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ge {

namespace gguf {
class GgufFile;
}

// GGUF token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The vocabulary as plain data; no file format involved.
struct VocabData {
  enum class Kind {
    kSentencePiece,  // GGUF "llama" (Gemma 3): merges derived from the vocabulary itself
    kBpe,            // GGUF "gemma4" or HF tokenizer.json BPE: explicit merges
  };
  Kind kind = Kind::kSentencePiece;
  std::vector<std::string> tokens;
  std::vector<float> scores;         // optional (empty or one per token); informational only
  std::vector<int32_t> token_types;  // TokenType values; empty means all normal
  std::vector<std::string> merges;   // "left right", kBpe only, highest priority first
  int32_t bos_id = -1;               // -1: none
  int32_t eos_id = -1;
  int32_t pad_id = -1;
  int32_t unk_id = -1;
  bool add_bos = false;
  bool add_space_prefix = false;  // SentencePiece dummy prefix "▁" at the start of the input
};

class Tokenizer {
 public:
  // Validates `data` (ids in range, byte tokens spelled <0xXX>, merges over known tokens) and
  // builds the lookup tables.
  static Result<Tokenizer> create(VocabData data);
  // Reads the tokenizer.ggml.* keys (tokenizer_gguf.cc).
  static Result<Tokenizer> from_gguf(const gguf::GgufFile& file);
  // Reads an HF tokenizer.json with a BPE model (tokenizer_hf_json.cc).
  static Result<Tokenizer> from_hf_json(const std::string& tokenizer_json_path);
  static Result<Tokenizer> from_hf_json_text(std::string_view json_text);

  // Token ids for `text` (any bytes). User-defined literals ("\n\n", "<table>") always match as
  // whole tokens; control literals ("<start_of_turn>") only with `parse_special`. Bytes that are
  // not well-formed UTF-8 become their <0xXX> byte tokens, one per byte.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // Text of `ids`: "▁" -> " ", byte tokens -> raw bytes, ill-formed UTF-8 -> U+FFFD. Ids out of
  // range are ignored; with `skip_special` control/unused tokens and bos/eos/pad/unk are dropped.
  std::string decode(std::span<const int32_t> ids, bool skip_special) const;

  // Piece spelling of `id` ("▁Hello", "<0x0A>"); empty for ids out of range.
  std::string_view token_text(int32_t id) const;
  int32_t n_vocab() const;
  std::optional<int32_t> find_token(std::string_view text) const;
  TokenType token_type(int32_t id) const;  // kUndefined for ids out of range
  bool is_special(int32_t id) const;       // control, unknown, unused, or one of bos/eos/pad/unk
  bool is_byte_token(int32_t id) const;
  VocabData::Kind kind() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;
  int32_t unk_id() const;
  bool add_bos() const;
  bool add_space_prefix() const;

  // Appends the bytes `id` decodes to (before UTF-8 sanitizing); returns false when the id is
  // dropped (out of range, or special with `skip_special`). `first` applies the dummy-prefix rule.
  bool append_piece(int32_t id, bool skip_special, bool first, std::string* out) const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable after create(): copies and threads share it
};

}  // namespace ge
