// hookd's configuration through its public entry point only (parse_config): a config file plus
// command-line flags plus HOOKD_* environment, so that whatever reads the file inside may change
// without this target changing.
//
// Input (fuzz_input.hpp's header lines, a blank line, a body):
//   header lines   HOOKD_* names are the environment; "Ext: json" or "Ext: none" picks the config
//                  file's name (.json, or no extension, which sniffs the format); .toml otherwise
//   body           the config file's text up to the first NUL byte; after it, flags separated by
//                  NUL bytes, passed before `--config FILE` (flags naming another config file are
//                  left out, so that no input reads a file of its choosing)

#include "core/config/config.hpp"
#include "fuzz/fuzz_input.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

using namespace hookd;

// Made once and never destroyed, so that the exit handler that removes it can still read it.
const std::filesystem::path& work_dir() {
  static const auto* dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/hookd-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    return new std::filesystem::path(pattern);
  }();
  static const bool cleanup = std::atexit([] {
                                std::error_code ignored;
                                std::filesystem::remove_all(*dir, ignored);
                              }) == 0;
  (void)cleanup;
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = fuzz::split_headers(fuzz::as_text(data, size));
  const auto nul = input.body.find('\0');
  const std::string_view file_text = input.body.substr(0, nul);

  std::vector<std::string> args;
  if (nul != std::string_view::npos) {
    std::string_view rest = input.body.substr(nul + 1);
    while (!rest.empty()) {
      const auto end = rest.find('\0');
      const std::string_view arg = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      if (arg.starts_with("--config")) continue;
      args.emplace_back(arg);
    }
  }

  const auto ext = input.header("Ext");
  const char* name = !ext ? "hookd.toml" : *ext == "json" ? "hookd.json" : "hookd-config";
  const auto path = work_dir() / name;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(file_text.data(), static_cast<std::streamsize>(file_text.size()));
  }
  args.emplace_back("--config");
  args.emplace_back(path.string());

  const env_lookup env = [&input](const std::string& key) -> std::optional<std::string> {
    if (auto v = input.header(key)) return std::string(*v);
    return std::nullopt;
  };
  auto parsed = parse_config(args, env);
  if (auto* message = std::get_if<std::string>(&parsed)) {
    if (message->empty()) {
      std::fprintf(stderr, "config_fuzz: a refused configuration without a message\n");
      std::abort();
    }
  }
  std::filesystem::remove(path);
  return 0;
}
