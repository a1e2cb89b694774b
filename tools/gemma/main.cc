// The gemma command: dispatches to the subcommands.
#include <cstdio>
#include <cstring>
#include <string>

namespace ge::cli {
int cmd_run(int argc, char** argv);
int cmd_chat(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_synth(int argc, char** argv);
}  // namespace ge::cli

namespace {

const char* kUsage =
    "usage: gemma <command> [options]\n"
    "\n"
    "commands:\n"
    "  run        generate from a prompt (streams text, then a stats line)\n"
    "  chat       interactive multi-turn chat (/reset, /exit)\n"
    "  bench      prefill/decode speed table (llama-bench format, or JSON)\n"
    "  tokenize   print the token ids of a text\n"
    "  inspect    describe a model file: architecture, layers, tensors, memory\n"
    "  serve      OpenAI-compatible HTTP server with continuous batching\n"
    "  quantize   HF checkpoint -> torchao INT4 safetensors or GGUF (and quality checks)\n"
    "  synth      GGUF of random weights with a published model's shapes\n"
    "\n"
    "Run 'gemma <command> --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "run") return ge::cli::cmd_run(argc - 1, argv + 1);
  if (cmd == "chat") return ge::cli::cmd_chat(argc - 1, argv + 1);
  if (cmd == "bench") return ge::cli::cmd_bench(argc - 1, argv + 1);
  if (cmd == "tokenize") return ge::cli::cmd_tokenize(argc - 1, argv + 1);
  if (cmd == "inspect") return ge::cli::cmd_inspect(argc - 1, argv + 1);
  if (cmd == "serve") return ge::cli::cmd_serve(argc - 1, argv + 1);
  if (cmd == "quantize") return ge::cli::cmd_quantize(argc - 1, argv + 1);
  if (cmd == "synth") return ge::cli::cmd_synth(argc - 1, argv + 1);
  std::fprintf(stderr, "error: unknown command '%s'\n%s", cmd.c_str(), kUsage);
  return 2;
}
