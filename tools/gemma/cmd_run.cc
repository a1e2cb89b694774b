// `gemma run`: one prompt in, streamed text out, then the stats line.
#include <cstdio>
#include <iostream>

#include "chat/stop_string_matcher.h"
#include "cli_common.h"
#include "core/mapped_file.h"
#include "runtime/generation.h"
#include "tokenizer/streaming_detokenizer.h"

namespace ge::cli {

int cmd_run(int argc, char** argv) {
  Args a("gemma run", "gemma run -m MODEL (-p PROMPT | -f FILE) [options]");
  add_model_options(a);
  a.option("prompt", "p", "TEXT", "the prompt");
  a.option("file", "f", "PATH", "read the prompt from a file");
  a.option("system", "", "TEXT", "system prompt (chat mode)");
  a.option("max-new-tokens", "n", "N", "tokens to generate at most", "256");
  a.flag("raw", "no chat template: the prompt is plain text after BOS");
  a.flag("chat", "wrap the prompt in the model's chat format (default when the model ships a chat template)");
  a.flag("think", "enable thinking (Gemma 4)");
  a.flag("hide-thinking", "do not print the thought channel");
  a.flag("no-stats", "do not print the stats lines");
  a.flag("host-sampling", "sample on the host from downloaded logits even where the backend samples on the device "
         "(penalties always do)");
  a.option("stop", "", "TEXT", "stop when the output contains TEXT (user stop string, matched across tokens)");
  add_sampling_options(a);
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  std::string prompt = a.str("prompt");
  if (a.has("file")) {
    Result<std::string> text = read_text_file(a.str("file"), 64u << 20);
    if (!text.is_ok()) return fail(text.status());
    prompt = *text;
  }
  if (!a.has("prompt") && !a.has("file")) return fail(invalid_argument("gemma run: give a prompt with -p or -f"));
  Result<int64_t> max_new = a.integer("max-new-tokens", 0, 1 << 24);
  if (!max_new.is_ok()) return fail(max_new.status());
  Result<int32_t> ctx = context_length(a);
  if (!ctx.is_ok()) return fail(ctx.status());

  GenerationStats stats;
  stats.model_load_start_ms = now_ms();
  Result<std::unique_ptr<Engine>> engine = load_engine(a, true);
  if (!engine.is_ok()) return fail(engine.status());
  stats.model_load_end_ms = now_ms();
  Engine& e = **engine;
  Result<SamplingParams> sp = sampling_from_args(a, e.default_sampling());
  if (!sp.is_ok()) return fail(sp.status());

  if (a.on("raw") && a.on("chat")) return fail(invalid_argument("gemma run: --raw and --chat exclude each other"));
  // Instruction-tuned models ship a chat template; base models do not and are prompted raw.
  const bool raw = a.on("raw") || (!a.on("chat") && !e.embedded_chat_template().has_value());
  if (raw && !a.on("raw") && !a.on("no-stats"))
    std::fprintf(stderr, "note: the model ships no chat template (a base model?): prompting raw; --chat overrides\n");
  std::vector<int32_t> tokens;
  if (raw) {
    tokens = e.tokenizer().encode(prompt, /*add_bos=*/true, /*parse_special=*/false);
  } else {
    std::vector<chat::Message> msgs;
    if (a.has("system")) msgs.push_back(chat::Message{"system", a.str("system"), "", {}, "", ""});
    msgs.push_back(chat::Message{"user", prompt, "", {}, "", ""});
    chat::ChatOptions co;
    co.enable_thinking = a.on("think");
    Result<std::vector<int32_t>> t = encode_chat(e, msgs, co);
    if (!t.is_ok()) return fail(t.status());
    tokens = std::move(t).value();
  }
  Result<std::unique_ptr<Session>> session = e.create_session(resolve_context(*ctx, e));
  if (!session.is_ok()) return fail(session.status());
  Sampler sampler(*sp);
  GenerateOptions go;
  go.max_new_tokens = static_cast<int32_t>(*max_new);
  go.stop_ids = e.stop_token_ids();
  go.device_sampling = !a.on("host-sampling");
  StreamingDetokenizer detok(e.tokenizer(), /*skip_special=*/true);
  std::vector<std::string> stops;
  if (a.has("stop")) {
    if (a.str("stop").empty()) return fail(invalid_argument("gemma run: --stop needs a non-empty text"));
    stops.push_back(a.str("stop"));
  }
  chat::StopStringMatcher stop_matcher(stops);
  const bool stats_on = !a.on("no-stats");
  if (stats_on) std::fprintf(stderr, "Prompt tokens: %zu\n", tokens.size());
  if (raw) std::cout << prompt << std::flush;
  Result<StopReason> r = generate(**session, tokens, sampler, go,
                                  [&](int32_t id) {
                                    const chat::StopStringMatcher::Result out = stop_matcher.push(detok.push(id));
                                    std::cout << out.text << std::flush;
                                    return !out.stopped;
                                  },
                                  &stats);
  if (!stop_matcher.stopped()) std::cout << stop_matcher.push(detok.flush()).text << stop_matcher.flush();
  std::cout << std::endl;
  if (!r.is_ok()) return fail(r.status());
  if (stats_on) {
    std::cout << stats.observer_line() << std::endl;
    std::fprintf(stderr, "%s\n", stats.summary().c_str());
    if (uses_device_sampling(**session, sampler, go)) {
      const Status g = (*session)->graph_status();
      std::fprintf(stderr, "decode: device sampling, %s\n",
                   g.is_ok() ? "one recorded graph per step" : ("eager steps (" + g.to_string() + ")").c_str());
    }
  }
  return 0;
}

}  // namespace ge::cli
