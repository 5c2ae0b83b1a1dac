#include "harness/cli.h"

#include <cinttypes>
#include <cstdlib>

namespace harness {

void Cli::positional(const char* name, const char* help, uint64_t& out, uint64_t lo, uint64_t hi,
                     bool required) {
  args_.push_back({name, help, &out, nullptr, lo, hi, required, true, nullptr});
}

void Cli::number(const char* name, const char* help, uint64_t& out, uint64_t lo, uint64_t hi,
                 const char* default_text) {
  args_.push_back({name, help, &out, nullptr, lo, hi, false, false, default_text});
}

void Cli::flag(const char* name, const char* help, bool& out) {
  args_.push_back({name, help, nullptr, &out, 0, 0, false, false, nullptr});
}

void Cli::parse(int argc, char** argv) {
  // Options may come before, between and after the positionals, which are matched in order
  // once every option is known.
  std::vector<const char*> positionals;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      print_usage(stdout);
      std::exit(0);
    }
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      parse_option(a, i, argc, argv);
    } else if (a.size() > 1 && a[0] == '-') {
      usage_error("unknown option '" + a + "'");
    } else {
      positionals.push_back(argv[i]);
    }
  }
  size_t next = 0;
  for (const Arg& arg : args_) {
    if (!arg.positional) continue;
    if (next < positionals.size()) {
      set_number(arg, positionals[next++]);
    } else if (arg.required) {
      usage_error(std::string("missing argument ") + arg.name);
    }
  }
  if (next < positionals.size())
    usage_error(std::string("unexpected argument '") + positionals[next] + "'");
}

void Cli::parse_option(const std::string& a, int& i, int argc, char** argv) {
  size_t eq = a.find('=');
  std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
  for (const Arg& arg : args_) {
    if (arg.positional || name != arg.name) continue;
    if (arg.flag != nullptr) {
      if (eq != std::string::npos) usage_error("option --" + name + " takes no value");
      *arg.flag = true;
    } else if (eq != std::string::npos) {
      set_number(arg, a.c_str() + eq + 1);
    } else {
      if (i + 1 >= argc) usage_error("option --" + name + " needs a value");
      set_number(arg, argv[++i]);
    }
    return;
  }
  usage_error("unknown option '" + a + "'");
}

// Decimal digits only (no sign, no spaces, no hex), within [lo, hi]; anything else exits 2.
void Cli::set_number(const Arg& arg, const char* text) const {
  uint64_t v = 0;
  bool ok = *text != '\0';
  for (const char* c = text; ok && *c != '\0'; ++c) {
    uint64_t digit = static_cast<uint64_t>(*c - '0');
    if (*c < '0' || *c > '9' || v > (UINT64_MAX - digit) / 10)
      ok = false;
    else
      v = v * 10 + digit;
  }
  if (!ok || v < arg.lo || v > arg.hi) {
    std::string what = arg.positional ? arg.name : std::string("--") + arg.name;
    usage_error("bad value '" + std::string(text) + "' for " + what + " (expected " +
                std::to_string(arg.lo) + ".." + std::to_string(arg.hi) + ")");
  }
  *arg.number = v;
}

void Cli::usage_error(const std::string& why) const {
  std::fprintf(stderr, "%s: %s\n", program_, why.c_str());
  print_usage(stderr);
  std::exit(2);
}

void Cli::print_usage(FILE* out) const {
  std::fprintf(out, "usage: %s [options]", program_);
  for (const Arg& a : args_)
    if (a.positional) std::fprintf(out, a.required ? " %s" : " [%s]", a.name);
  std::fprintf(out, "\n  %s\n", summary_);
  // Each argument's line ends with its range and default, e.g. "(1..1024, default 2)".
  auto describe = [out](const Arg& a, const std::string& left) {
    std::fprintf(out, "  %-22s %s", left.c_str(), a.help);
    if (a.number == nullptr) {
      std::fprintf(out, "\n");
      return;
    }
    std::fprintf(out, " (%" PRIu64 "..%" PRIu64, a.lo, a.hi);
    if (a.default_text != nullptr)
      std::fprintf(out, ", default %s", a.default_text);
    else if (!a.required)
      std::fprintf(out, ", default %" PRIu64, *a.number);
    std::fprintf(out, ")\n");
  };
  bool first = true;
  for (const Arg& a : args_) {
    if (!a.positional) continue;
    if (first) std::fprintf(out, "\n");
    first = false;
    describe(a, a.name);
  }
  std::fprintf(out, "\noptions:\n");
  for (const Arg& a : args_)
    if (!a.positional) describe(a, std::string("--") + a.name + (a.flag != nullptr ? "" : " N"));
  std::fprintf(out, "  %-22s %s\n", "--help", "show this text and exit");
  if (epilog_ != nullptr) std::fprintf(out, "\n%s\n", epilog_);
}

}  // namespace harness
