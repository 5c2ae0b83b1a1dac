// The command line of the stress and perf programs: positional arguments and --options that are
// unsigned integers in a range, and boolean --flags. "--name N" and "--name=N" both work.
// --help (or -h) prints the usage on stdout and exits 0; anything malformed prints a one-line
// reason and the usage on stderr and exits 2 (the convention scripts/check_help_flags.sh and the
// cli tests check).
#ifndef MESH_HARNESS_CLI_H
#define MESH_HARNESS_CLI_H

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace harness {

class Cli {
 public:
  Cli(const char* program, const char* summary) : program_(program), summary_(summary) {}

  // A positional argument, required unless `required` is false (then the current value of
  // `out` is the default).
  void positional(const char* name, const char* help, uint64_t& out, uint64_t lo, uint64_t hi,
                  bool required = true);
  // "--name N"; the current value of `out` is the default, shown in the usage unless
  // `default_text` describes it instead (e.g. a seed taken from the clock).
  void number(const char* name, const char* help, uint64_t& out, uint64_t lo, uint64_t hi,
              const char* default_text = nullptr);
  // "--name" sets `out` to true.
  void flag(const char* name, const char* help, bool& out);
  // Free text printed after the options (examples, what the output looks like).
  void epilog(const char* text) { epilog_ = text; }

  // Parses the whole command line into the targets; exits on --help or an error.
  void parse(int argc, char** argv);

  // Reports a bad command line found after parsing (e.g. inconsistent values) the way the
  // parser does: the reason and the usage on stderr, exit 2.
  [[noreturn]] void usage_error(const std::string& why) const;

  const char* program() const { return program_; }

 private:
  struct Arg {
    const char* name;
    const char* help;
    uint64_t* number;  // the target of a positional or a number option
    bool* flag;        // the target of a flag
    uint64_t lo, hi;
    bool required;
    bool positional;
    const char* default_text;
  };

  void parse_option(const std::string& a, int& i, int argc, char** argv);
  void set_number(const Arg& arg, const char* text) const;
  void print_usage(FILE* out) const;

  const char* program_;
  const char* summary_;
  const char* epilog_ = nullptr;
  std::vector<Arg> args_;
};

}  // namespace harness

#endif  // MESH_HARNESS_CLI_H
