// Flag parsing for the gemma CLI.
#include "cli_args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace ge::cli {

void Args::option(const std::string& name, const std::string& short_name, const std::string& value_name,
                  const std::string& help, const std::string& default_value) {
  specs_[name] = Spec{short_name, value_name, help, default_value, true};
  order_.push_back(name);
}

void Args::flag(const std::string& name, const std::string& help) {
  specs_[name] = Spec{"", "", help, "", false};
  order_.push_back(name);
}

Status Args::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      help_requested_ = true;
      continue;
    }
    if (a.size() < 2 || a[0] != '-') {
      positional_.push_back(a);
      continue;
    }
    std::string name, value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      name = a.substr(2);
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline = true;
      }
    } else {
      const std::string s = a.substr(1);
      for (const auto& [n, spec] : specs_)
        if (spec.short_name == s) name = n;
      if (name.empty()) return invalid_argument(command_ + ": unknown option '" + a + "' (see --help)");
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) return invalid_argument(command_ + ": unknown option '" + a + "' (see --help)");
    if (!it->second.takes_value) {
      if (has_inline) return invalid_argument(command_ + ": --" + name + " takes no value");
      values_[name] = "1";
      continue;
    }
    if (!has_inline) {
      if (i + 1 >= argc) return invalid_argument(command_ + ": option --" + name + " needs a value");
      value = argv[++i];
    }
    values_[name] = value;
  }
  return Status::ok();
}

std::string Args::help() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n\noptions:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  " + (s.short_name.empty() ? std::string("    ") : "-" + s.short_name + ", ") + "--" + name;
    if (s.takes_value) left += " " + s.value_name;
    if (left.size() < 30) left.resize(30, ' ');
    else left += "  ";
    os << left << s.help;
    if (!s.default_value.empty()) os << " (default: " << s.default_value << ")";
    os << "\n";
  }
  os << "  -h, --help                  show this help\n";
  return os.str();
}

bool Args::has(const std::string& name) const { return values_.count(name) != 0; }

std::string Args::str(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  auto s = specs_.find(name);
  return s == specs_.end() ? std::string() : s->second.default_value;
}

Result<int64_t> Args::integer(const std::string& name, int64_t lo, int64_t hi) const {
  const std::string v = str(name);
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == v.c_str() || *end != '\0' || errno == ERANGE || x < lo || x > hi)
    return invalid_argument(command_ + ": --" + name + " must be an integer in [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "], got '" + v + "'");
  return static_cast<int64_t>(x);
}

Result<double> Args::number(const std::string& name, double lo, double hi) const {
  const std::string v = str(name);
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end == v.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(x) || x < lo || x > hi) {
    std::ostringstream os;
    os << command_ << ": --" << name << " must be a number in [" << lo << ", " << hi << "], got '" << v << "'";
    return invalid_argument(os.str());
  }
  return x;
}

Result<std::vector<int64_t>> Args::integer_list(const std::string& name, int64_t lo, int64_t hi) const {
  std::vector<int64_t> out;
  std::stringstream ss(str(name));
  std::string item;
  while (std::getline(ss, item, ',')) {
    errno = 0;
    char* end = nullptr;
    const long long x = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno == ERANGE || x < lo || x > hi)
      return invalid_argument(command_ + ": --" + name + " must be a comma-separated list of integers in [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out.push_back(x);
  }
  if (out.empty()) return invalid_argument(command_ + ": --" + name + " is empty");
  return out;
}

}  // namespace ge::cli
