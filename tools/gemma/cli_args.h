// A small, strict command-line parser for the gemma subcommands: every flag is declared with its
// help text; unknown flags, missing values and malformed numbers are one-line errors.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace ge::cli {

class Args {
 public:
  Args(std::string command, std::string usage) : command_(std::move(command)), usage_(std::move(usage)) {}

  // Declares a flag taking a value (`--name VALUE`, `--name=VALUE`, or `-s VALUE` for a short alias).
  void option(const std::string& name, const std::string& short_name, const std::string& value_name,
              const std::string& help, const std::string& default_value = "");
  // Declares a boolean switch (`--name`).
  void flag(const std::string& name, const std::string& help);

  Status parse(int argc, char** argv);  // argv[0] is the subcommand name
  std::string help() const;

  bool has(const std::string& name) const;
  bool on(const std::string& name) const { return has(name); }
  std::string str(const std::string& name) const;
  Result<int64_t> integer(const std::string& name, int64_t lo, int64_t hi) const;
  Result<double> number(const std::string& name, double lo, double hi) const;
  Result<std::vector<int64_t>> integer_list(const std::string& name, int64_t lo, int64_t hi) const;
  const std::vector<std::string>& positional() const { return positional_; }
  bool help_requested() const { return help_requested_; }

 private:
  struct Spec {
    std::string short_name, value_name, help, default_value;
    bool takes_value = true;
  };
  std::string command_, usage_;
  std::map<std::string, Spec> specs_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace ge::cli
