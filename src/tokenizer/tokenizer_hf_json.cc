// Tokenizer::from_hf_json: VocabData from an HF tokenizer.json holding a Gemma-style BPE model
// (spaces escaped as "▁", byte fallback, added tokens). Shapes it cannot reproduce are refused.
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"

namespace ge {
namespace {

using nlohmann::json;

constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";
// A vocabulary is dense (ids 0..n-1); this bounds what a hostile file can make us allocate.
constexpr size_t kMaxVocab = 1u << 24;

Status bad(const std::string& what) { return format_error("tokenizer.json: " + what); }
Status refuse(const std::string& what) { return unsupported("tokenizer.json: " + what); }

bool is_string_pattern(const json& pattern, std::string_view s) {
  return pattern.is_object() && pattern.contains("String") && pattern["String"].is_string() &&
         pattern["String"].get<std::string>() == s;
}

bool is_space_escape_replace(const json& n) {
  return n.is_object() && n.value("type", "") == "Replace" && n.contains("pattern") &&
         is_string_pattern(n["pattern"], " ") && n.contains("content") && n["content"].is_string() &&
         n["content"].get<std::string>() == kSpaceEscape;
}

bool is_prepend_escape(const json& n) {
  return n.is_object() && n.value("type", "") == "Prepend" && n.contains("prepend") && n["prepend"].is_string() &&
         n["prepend"].get<std::string>() == kSpaceEscape;
}

// How the text reaches the BPE model: spaces must end up as "▁"; optionally one "▁" in front.
struct Escaping {
  bool escapes = false;
  bool prefix = false;
};

Status read_normalizer(const json& root, Escaping* esc) {
  if (!root.contains("normalizer") || root["normalizer"].is_null()) return Status::ok();
  const json& n = root["normalizer"];
  if (is_space_escape_replace(n)) {
    esc->escapes = true;
    return Status::ok();
  }
  if (n.is_object() && n.value("type", "") == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    const json& list = n["normalizers"];
    for (size_t i = 0; i < list.size(); ++i) {
      if (is_space_escape_replace(list[i])) {
        esc->escapes = true;
      } else if (is_prepend_escape(list[i]) && i == 0) {
        esc->prefix = true;
      } else {
        return refuse("normalizer step '" + list[i].value("type", std::string("?")) + "' is not supported");
      }
    }
    return Status::ok();
  }
  return refuse("normalizer '" + n.value("type", std::string("?")) +
                "' is not supported (expected Replace(\" \", \"\u2581\"))");
}

Status read_pre_tokenizer(const json& root, Escaping* esc) {
  if (!root.contains("pre_tokenizer") || root["pre_tokenizer"].is_null()) return Status::ok();
  const json& p = root["pre_tokenizer"];
  const std::string type = p.is_object() ? p.value("type", "") : "";
  // Splitting on " " after the normalizer has replaced every space is a no-op.
  if (type == "Split" && p.contains("pattern") && is_string_pattern(p["pattern"], " ") && esc->escapes) {
    return Status::ok();
  }
  if (type == "Metaspace" && !esc->escapes && !p.value("split", true) &&
      p.value("replacement", std::string()) == kSpaceEscape) {
    esc->escapes = true;
    const std::string scheme =
        p.value("prepend_scheme", std::string(p.value("add_prefix_space", true) ? "always" : "never"));
    esc->prefix = scheme != "never";
    return Status::ok();
  }
  return refuse("pre_tokenizer '" + type + "' is not supported");
}

Status read_model_options(const json& model) {
  if (model.value("type", "") != "BPE") {
    return refuse("model type '" + model.value("type", std::string("?")) + "' is not supported (expected BPE)");
  }
  auto is_unset = [&](const char* key) {
    return !model.contains(key) || model[key].is_null() ||
           (model[key].is_string() && model[key].get<std::string>().empty());
  };
  if (!is_unset("continuing_subword_prefix") || !is_unset("end_of_word_suffix")) {
    return refuse("BPE subword prefixes/suffixes are not supported");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0) {
    return refuse("BPE dropout is not supported");
  }
  if (model.value("ignore_merges", false)) return refuse("BPE ignore_merges is not supported");
  if (!model.value("fuse_unk", false) && !model.value("byte_fallback", false)) {
    return refuse("BPE without fuse_unk or byte_fallback is not supported");
  }
  return Status::ok();
}

Status set_token(std::vector<std::string>* tokens, std::vector<bool>* seen, int64_t id, const std::string& text,
                 const char* where) {
  if (id < 0 || static_cast<uint64_t>(id) >= tokens->size()) {
    return bad(std::string(where) + " token '" + text.substr(0, 64) + "' has id " + std::to_string(id) +
               ", outside 0.." + std::to_string(tokens->size() - 1) + " (ids must be dense)");
  }
  if ((*seen)[id] && (*tokens)[id] != text) {
    return bad("id " + std::to_string(id) + " names both '" + (*tokens)[id].substr(0, 64) + "' and '" +
               text.substr(0, 64) + "'");
  }
  (*tokens)[id] = text;
  (*seen)[id] = true;
  return Status::ok();
}

Result<Tokenizer> parse(const json& root) {
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    return bad("no 'model' object");
  }
  const json& model = root["model"];
  GE_RETURN_IF_ERROR(read_model_options(model));
  Escaping esc;
  GE_RETURN_IF_ERROR(read_normalizer(root, &esc));
  GE_RETURN_IF_ERROR(read_pre_tokenizer(root, &esc));
  if (!esc.escapes) return refuse("spaces are not escaped as \u2581 (no Replace normalizer or Metaspace)");

  if (!model.contains("vocab") || !model["vocab"].is_object()) return bad("model.vocab is not an object");
  const json& vocab = model["vocab"];
  const json empty_list = json::array();
  const json& added =
      root.contains("added_tokens") && root["added_tokens"].is_array() ? root["added_tokens"] : empty_list;

  // Every id must be named once by the vocab or the added tokens, so n is bounded by the entries.
  int64_t max_id = -1;
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer()) return bad("vocab entry '" + text.substr(0, 64) + "' has a non-integer id");
    max_id = std::max<int64_t>(max_id, id.get<int64_t>());
  }
  for (const json& a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
        !a["content"].is_string()) {
      return bad("an added_tokens entry lacks an integer id or a string content");
    }
    max_id = std::max<int64_t>(max_id, a["id"].get<int64_t>());
  }
  const size_t entries = vocab.size() + added.size();
  if (max_id < 0) return bad("the vocabulary is empty");
  if (static_cast<uint64_t>(max_id) >= entries || static_cast<uint64_t>(max_id) >= kMaxVocab) {
    return bad("token id " + std::to_string(max_id) + " leaves holes in a vocabulary of " + std::to_string(entries) +
               " entries");
  }
  const auto n = static_cast<size_t>(max_id) + 1;

  VocabData data;
  data.kind = VocabData::Kind::kBpe;
  data.add_space_prefix = esc.prefix;
  data.tokens.resize(n);
  data.token_types.assign(n, static_cast<int32_t>(TokenType::kNormal));
  std::vector<bool> seen(n, false);
  for (const auto& [text, id] : vocab.items()) {
    GE_RETURN_IF_ERROR(set_token(&data.tokens, &seen, id.get<int64_t>(), text, "vocab"));
  }
  const bool byte_fallback = model.value("byte_fallback", false);
  if (byte_fallback) {
    for (size_t i = 0; i < n; ++i) {
      const std::string& t = data.tokens[i];
      if (t.size() == 6 && t.rfind("<0x", 0) == 0 && t[5] == '>')
        data.token_types[i] = static_cast<int32_t>(TokenType::kByte);
    }
  }
  for (const json& a : added) {
    const std::string content = a["content"].get<std::string>();
    const int64_t id = a["id"].get<int64_t>();
    GE_RETURN_IF_ERROR(set_token(&data.tokens, &seen, id, content, "added"));
    if (a.value("lstrip", false) || a.value("rstrip", false) || a.value("single_word", false)) {
      return refuse("added token '" + content.substr(0, 64) + "' uses lstrip/rstrip/single_word");
    }
    if (a.value("normalized", false) && content.find(' ') != std::string::npos) {
      return refuse("normalized added token '" + content.substr(0, 64) + "' contains a space");
    }
    data.token_types[id] =
        static_cast<int32_t>(a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!seen[i]) return bad("token id " + std::to_string(i) + " is not defined");
  }

  if (model.contains("merges")) {
    const json& merges = model["merges"];
    if (!merges.is_array()) return bad("model.merges is not an array");
    data.merges.reserve(merges.size());
    for (const json& m : merges) {
      if (m.is_string()) {
        data.merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        const std::string left = m[0].get<std::string>();
        if (left.find(' ', 1) != std::string::npos) {
          return refuse("merge piece '" + left.substr(0, 64) + "' contains a space");
        }
        data.merges.push_back(left + " " + m[1].get<std::string>());
      } else {
        return bad("a model.merges entry is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }

  auto find = [&](const std::string& text) -> int32_t {
    if (vocab.contains(text)) return static_cast<int32_t>(vocab[text].get<int64_t>());
    for (const json& a : added) {
      if (a["content"].get<std::string>() == text) return static_cast<int32_t>(a["id"].get<int64_t>());
    }
    return -1;
  };
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    data.unk_id = find(model["unk_token"].get<std::string>());
  }
  // tokenizer.json carries no bos/eos/pad fields; Gemma's names are fixed.
  data.bos_id = find("<bos>");
  data.eos_id = find("<eos>");
  data.pad_id = find("<pad>");
  // A post-processor template that starts with a special token means "add BOS".
  if (root.contains("post_processor") && root["post_processor"].is_object()) {
    const json& pp = root["post_processor"];
    if (pp.value("type", "") == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array() &&
        !pp["single"].empty() && pp["single"][0].is_object() && pp["single"][0].contains("SpecialToken")) {
      const json& st = pp["single"][0]["SpecialToken"];
      if (st.is_object() && st.contains("id") && st["id"].is_string()) {
        const int32_t id = find(st["id"].get<std::string>());
        if (id >= 0) {
          data.bos_id = id;
          data.add_bos = true;
        }
      }
    }
  }
  auto tok = Tokenizer::create(std::move(data));
  if (!tok.is_ok()) return bad(tok.status().message());
  return tok;
}

}  // namespace

Result<Tokenizer> Tokenizer::from_hf_json_text(std::string_view json_text) {
  try {
    const json root = json::parse(json_text);
    return parse(root);
  } catch (const std::exception& e) {
    return format_error(std::string("tokenizer.json: ") + e.what());
  }
}

Result<Tokenizer> Tokenizer::from_hf_json(const std::string& tokenizer_json_path) {
  GE_ASSIGN_OR_RETURN(std::string text, read_text_file(tokenizer_json_path));
  auto tok = from_hf_json_text(text);
  if (!tok.is_ok()) return Status(tok.status().code(), tok.status().message() + " (" + tokenizer_json_path + ")");
  return tok;
}

}  // namespace ge
