// Options and helpers shared by the gemma subcommands (model loading, sampling flags, prompts).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/chat_template.h"
#include "cli_args.h"
#include "runtime/engine.h"

namespace ge::cli {

void add_model_options(Args& a, const char* chunk_default = "0");     // -m, --backend, -t, -c, --chunk, --mlock
void add_sampling_options(Args& a);  // --temp, --top-k, --top-p, --min-p, penalties, --seed

Result<std::unique_ptr<Engine>> load_engine(const Args& a, bool show_progress);
Result<int32_t> context_length(const Args& a);  // 0 = let resolve_context decide
int32_t resolve_context(int32_t requested, const Engine& e);
// The engine's defaults overridden by whatever flags were given; validated.
Result<SamplingParams> sampling_from_args(const Args& a, const SamplingParams& defaults);

chat::ChatFormat chat_format_of(const Engine& e);
// Renders a conversation with the model's chat format and tokenizes it (specials parsed, one BOS).
Result<std::vector<int32_t>> encode_chat(const Engine& e, const std::vector<chat::Message>& messages,
                                         const chat::ChatOptions& options);

// Prints "error: <message>" to stderr and returns the exit code 1.
// --quant of a synthetic model: q4_0, q8_0, int4-g32/g64/g128, int8 → (encoding, group size; 0 = the
// type's own block).
Result<std::pair<QuantType, int64_t>> synthetic_quant_arg(const std::string& q);
int fail(const Status& s);

}  // namespace ge::cli
