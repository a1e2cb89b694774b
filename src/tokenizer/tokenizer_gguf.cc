// Tokenizer::from_gguf: VocabData from the tokenizer.ggml.* metadata keys of a GGUF file.
#include <cmath>

#include "formats/gguf_reader.h"
#include "tokenizer/tokenizer.h"

namespace ge {
namespace {

// Optional id key: absent -> -1; present -> must fit int32 (range against the vocab is checked
// by Tokenizer::create).
Status read_id(const gguf::GgufFile& file, const char* key, int32_t* out) {
  *out = -1;
  if (!file.has(key)) return Status::ok();
  GE_ASSIGN_OR_RETURN(uint64_t v, file.get_uint(key));
  if (v >= static_cast<uint64_t>(INT32_MAX)) {
    return format_error(std::string("tokenizer: gguf key ") + key + " = " + std::to_string(v) + " is out of range");
  }
  *out = static_cast<int32_t>(v);
  return Status::ok();
}

Status read_flag(const gguf::GgufFile& file, const char* key, bool fallback, bool* out) {
  *out = fallback;
  if (!file.has(key)) return Status::ok();
  GE_ASSIGN_OR_RETURN(*out, file.get_bool(key));
  return Status::ok();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  if (!file.has("tokenizer.ggml.model")) {
    return not_found("tokenizer: the GGUF file has no tokenizer (key tokenizer.ggml.model is missing)");
  }
  GE_ASSIGN_OR_RETURN(std::string model, file.get_string("tokenizer.ggml.model"));
  std::string arch;
  if (file.has("general.architecture")) {
    GE_ASSIGN_OR_RETURN(arch, file.get_string("general.architecture"));
  }

  VocabData data;
  if (model == "llama") {
    data.kind = VocabData::Kind::kSentencePiece;
  } else if (model == "gemma4") {
    data.kind = VocabData::Kind::kBpe;
  } else {
    return unsupported("tokenizer: GGUF tokenizer model '" + model +
                       "' is not supported (expected 'llama' for Gemma 3 or 'gemma4')");
  }

  GE_ASSIGN_OR_RETURN(data.tokens, file.get_string_array("tokenizer.ggml.tokens"));
  const size_t n = data.tokens.size();
  if (file.has("tokenizer.ggml.scores")) {
    GE_ASSIGN_OR_RETURN(data.scores, file.get_f32_array("tokenizer.ggml.scores"));
    if (data.scores.size() != n) {
      return format_error("tokenizer: gguf has " + std::to_string(data.scores.size()) + " scores for " +
                          std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(data.scores[i])) {
        return format_error("tokenizer: gguf score of token " + std::to_string(i) + " is not finite");
      }
    }
  }
  if (file.has("tokenizer.ggml.token_type")) {
    GE_ASSIGN_OR_RETURN(std::vector<int64_t> types, file.get_int_array("tokenizer.ggml.token_type"));
    if (types.size() != n) {
      return format_error("tokenizer: gguf has " + std::to_string(types.size()) + " token types for " +
                          std::to_string(n) + " tokens");
    }
    data.token_types.resize(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > static_cast<int64_t>(TokenType::kByte)) {
        return format_error("tokenizer: gguf token " + std::to_string(i) + " has unknown type " +
                            std::to_string(types[i]));
      }
      data.token_types[i] = static_cast<int32_t>(types[i]);
    }
  }
  if (data.kind == VocabData::Kind::kBpe) {
    if (!file.has("tokenizer.ggml.merges")) {
      return format_error("tokenizer: gguf tokenizer '" + model + "' needs tokenizer.ggml.merges");
    }
    GE_ASSIGN_OR_RETURN(data.merges, file.get_string_array("tokenizer.ggml.merges"));
  }

  GE_RETURN_IF_ERROR(read_id(file, "tokenizer.ggml.bos_token_id", &data.bos_id));
  GE_RETURN_IF_ERROR(read_id(file, "tokenizer.ggml.eos_token_id", &data.eos_id));
  GE_RETURN_IF_ERROR(read_id(file, "tokenizer.ggml.padding_token_id", &data.pad_id));
  GE_RETURN_IF_ERROR(read_id(file, "tokenizer.ggml.unknown_token_id", &data.unk_id));
  // llama.cpp adds BOS to SentencePiece vocabularies unless told otherwise. Gemma 4's reference
  // tokenizer adds none (its chat template writes <bos>), whatever the file says.
  GE_RETURN_IF_ERROR(read_flag(file, "tokenizer.ggml.add_bos_token", true, &data.add_bos));
  if (data.kind == VocabData::Kind::kBpe) data.add_bos = false;
  // Gemma's SentencePiece models have no dummy prefix and HF's Gemma tokenizer never adds one
  // ("Hello" is the single token "Hello"); the Gemma 3 270M file says add_space_prefix = false.
  // Other architectures keep the flag (llama.cpp's default for SentencePiece is true).
  const bool gemma = arch.rfind("gemma", 0) == 0;
  GE_RETURN_IF_ERROR(read_flag(file, "tokenizer.ggml.add_space_prefix", !gemma, &data.add_space_prefix));
  if (gemma) data.add_space_prefix = false;

  auto tok = Tokenizer::create(std::move(data));
  if (!tok.is_ok()) return format_error("gguf: " + tok.status().message());
  return tok;
}

}  // namespace ge
