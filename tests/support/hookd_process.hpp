#pragma once
// The real hookd executable as a child process over a data dir, listening on 127.0.0.1 port 0:
// started, and waited for until its `listening` log line names the port. Shared by the tests
// that kill, restart or starve the binary (crash, crash loop, backup, storage faults), so that
// they all start it the same way.

#include "support/delivery_fixture.hpp"

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace hookd::test {

// "http://127.0.0.1:PORT" (the `address` of hookd's `listening` line) as an endpoint.
inline asio::ip::tcp::endpoint listening_endpoint(std::string_view url) {
  const auto port = std::stoi(std::string(url.substr(url.rfind(':') + 1)));
  return {asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)};
}

class hookd_process {
 public:
  // Starts `<build>/bin/hookd --listen 127.0.0.1:0 --data-dir DATA_DIR --threads 2
  // --shutdown-delay 0s ARGS...` (a later flag wins) with
  // `env` ("NAME=value") added to the environment; its stdout and stderr go to
  // OUTPUT_PREFIX.out and .err. Throws, with what hookd said, when it does not come up.
  hookd_process(const std::filesystem::path& data_dir, const std::filesystem::path& output_prefix,
                std::vector<std::string> args = {}, std::vector<std::string> env = {}) {
    const std::string binary = std::string(HOOKD_BIN_DIR) + "/hookd";
    if (::access(binary.c_str(), X_OK) != 0) {
      throw std::runtime_error(binary + " is not built (ninja hookd)");
    }
    std::vector<std::string> all{"--listen",  "127.0.0.1:0", "--data-dir",       data_dir.string(),
                                 "--threads", "2",           "--shutdown-delay", "0s"};
    all.insert(all.end(), args.begin(), args.end());
    child_ = std::make_unique<child_process>(binary, std::move(all), output_prefix, std::move(env));
    auto listening = child_->wait_for_json(
        [](const json::object& o) {
          const auto* e = o.if_contains("event");
          return e && e->is_string() && e->as_string() == "listening";
        },
        true, 60s);
    if (!listening) {
      throw std::runtime_error("hookd did not start: " + child_->output(true));
    }
    endpoint_ = listening_endpoint(listening->at("address").as_string());
  }

  asio::ip::tcp::endpoint endpoint() const { return endpoint_; }
  child_process& child() { return *child_; }

  // SIGKILL, and the exit code seen (128 + 9 when the kill was what ended it).
  std::optional<int> kill() {
    child_->signal(SIGKILL);
    return child_->wait_exit();
  }
  // SIGTERM, and the exit code (0 for a clean stop).
  std::optional<int> stop() {
    child_->signal(SIGTERM);
    return child_->wait_exit(60s);
  }

 private:
  std::unique_ptr<child_process> child_;
  asio::ip::tcp::endpoint endpoint_;
};

}  // namespace hookd::test
