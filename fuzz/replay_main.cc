// main() for builds without libFuzzer (the default g++ build): runs LLVMFuzzerTestOneInput once
// on every file named on the command line or found (not recursively) in a named directory, as
// `harness -runs=0 DIR...` does under libFuzzer. Arguments starting with '-' are ignored, so the
// same command line works for both.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

namespace {

bool collect(const std::string& arg, std::vector<fs::path>* files) {
  std::error_code ec;
  fs::file_status st = fs::status(arg, ec);
  if (ec || !fs::exists(st)) {
    std::fprintf(stderr, "mesh-fuzz-replay: %s: no such file or directory\n", arg.c_str());
    return false;
  }
  if (!fs::is_directory(st)) {
    files->push_back(arg);
    return true;
  }
  std::vector<fs::path> found;
  for (const fs::directory_entry& e : fs::directory_iterator(arg)) {
    if (e.is_regular_file()) found.push_back(e.path());
  }
  std::sort(found.begin(), found.end());
  files->insert(files->end(), found.begin(), found.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!arg.empty() && arg[0] == '-') continue;
    if (!collect(arg, &files)) return 1;
  }
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "mesh-fuzz-replay: cannot read %s\n", f.c_str());
      return 1;
    }
    std::fprintf(stderr, "mesh-fuzz-replay: running %s (%zu bytes)\n", f.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  std::printf("mesh-fuzz-replay: %zu inputs replayed, none failed\n", files.size());
  return 0;
}
