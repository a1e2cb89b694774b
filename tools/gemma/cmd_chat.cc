// `gemma chat`: an interactive multi-turn session. Each turn re-renders the whole conversation
// (earlier thoughts stripped, as the template does) and the session reuses the cached prefix.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "chat/reply_parser.h"
#include "cli_common.h"
#include "runtime/generation.h"
#include "tokenizer/streaming_detokenizer.h"

namespace ge::cli {

int cmd_chat(int argc, char** argv) {
  Args a("gemma chat", "gemma chat -m MODEL [options]   (type /reset to clear the history, /exit to quit)");
  add_model_options(a);
  a.option("system", "", "TEXT", "system prompt");
  a.option("max-new-tokens", "n", "N", "tokens per reply at most", "1024");
  a.flag("think", "enable thinking (Gemma 4)");
  a.flag("hide-thinking", "do not print the thought channel");
  a.flag("stats", "print the stats line after each reply");
  add_sampling_options(a);
  if (Status s = a.parse(argc, argv); !s.is_ok()) return fail(s);
  if (a.help_requested()) {
    std::cout << a.help();
    return 0;
  }
  Result<int64_t> max_new = a.integer("max-new-tokens", 1, 1 << 24);
  if (!max_new.is_ok()) return fail(max_new.status());
  Result<int32_t> ctx = context_length(a);
  if (!ctx.is_ok()) return fail(ctx.status());
  Result<std::unique_ptr<Engine>> engine = load_engine(a, true);
  if (!engine.is_ok()) return fail(engine.status());
  Engine& e = **engine;
  Result<SamplingParams> sp = sampling_from_args(a, e.default_sampling());
  if (!sp.is_ok()) return fail(sp.status());
  Result<std::unique_ptr<Session>> session = e.create_session(resolve_context(*ctx, e));
  if (!session.is_ok()) return fail(session.status());
  Sampler sampler(*sp);
  GenerateOptions go;
  go.max_new_tokens = static_cast<int32_t>(*max_new);
  go.stop_ids = e.stop_token_ids();
  chat::ChatOptions co;
  co.enable_thinking = a.on("think");
  const chat::ChatFormat format = chat_format_of(e);
  const bool tty = isatty(fileno(stdin)) != 0;

  std::vector<chat::Message> history;
  if (a.has("system")) history.push_back(chat::Message{"system", a.str("system"), "", {}, "", ""});
  const size_t base = history.size();
  std::string line;
  for (;;) {
    if (tty) std::cout << "\n> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      history.resize(base);
      (*session)->reset();
      std::cout << "(history cleared)\n";
      continue;
    }
    if (line.empty()) continue;
    history.push_back(chat::Message{"user", line, "", {}, "", ""});
    Result<std::vector<int32_t>> tokens = encode_chat(e, history, co);
    if (!tokens.is_ok()) {
      history.pop_back();
      std::fprintf(stderr, "error: %s\n", tokens.status().to_string().c_str());
      continue;
    }
    StreamingDetokenizer detok(e.tokenizer(), /*skip_special=*/true);
    chat::ReplyStreamParser parser(format);
    bool in_thought = false;
    auto show = [&](const chat::ReplyDelta& d) {
      if (!d.reasoning.empty() && !a.on("hide-thinking")) {
        if (!in_thought) std::cout << "[thinking] ";
        in_thought = true;
        std::cout << d.reasoning;
      }
      if (!d.content.empty()) {
        if (in_thought) std::cout << "\n[answer] ";
        in_thought = false;
        std::cout << d.content;
      }
      std::cout << std::flush;
    };
    GenerationStats stats;
    Result<StopReason> r = generate(**session, *tokens, sampler, go,
                                    [&](int32_t id) {
                                      show(parser.push(detok.push(id)));
                                      return true;
                                    },
                                    &stats);
    show(parser.push(detok.flush()));
    show(parser.flush());
    const chat::ParsedReply reply = parser.finish();
    std::cout << "\n";
    if (!r.is_ok()) {
      history.pop_back();
      std::fprintf(stderr, "error: %s\n", r.status().to_string().c_str());
      continue;
    }
    chat::Message m{"assistant", reply.content, reply.reasoning, reply.tool_calls, "", ""};
    history.push_back(std::move(m));
    if (a.on("stats")) std::fprintf(stderr, "%s\n", stats.summary().c_str());
  }
  return 0;
}

}  // namespace ge::cli
