// A receiver's answer to a delivery, read by the delivery client's own response reader
// (http/outbound/response_reader.hpp) from bytes in memory instead of a socket.
//
// Input: byte 0 sets how many bytes each read returns (1 to 256, so that heads and chunks arrive
// split anywhere), the rest is what the receiver sends; then the stream ends. Besides not
// crashing: the kept body prefix is at most kBodyPrefixBytes; an attempt ends with a status or
// an error; a status is three digits; only a connection that got a response is kept for reuse.

#include "http/outbound/response_reader.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <cstdio>
#include <cstdlib>

namespace {

using namespace hookd;
namespace asio = boost::asio;
namespace beast = boost::beast;

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "outbound_response_fuzz: %s\n", what);
  std::abort();
}

// An AsyncReadStream over fixed bytes: at most `step` bytes a read, then end of stream.
class memory_stream {
 public:
  using executor_type = asio::any_io_executor;

  memory_stream(executor_type ex, std::string_view bytes, std::size_t step)
      : ex_(std::move(ex)), rest_(bytes), step_(step) {}

  executor_type get_executor() const noexcept { return ex_; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          beast::error_code ec;
          std::size_t n = 0;
          if (rest_.empty()) {
            ec = asio::error::eof;
          } else {
            n = asio::buffer_copy(b, asio::buffer(rest_.data(), std::min(rest_.size(), step_)));
            rest_.remove_prefix(n);
          }
          asio::post(ex_, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
        },
        token, buffers);
  }

 private:
  executor_type ex_;
  std::string_view rest_;
  std::size_t step_;
};

asio::awaitable<http::exchange_status> read(memory_stream& stream, beast::flat_buffer& buffer,
                                            http::attempt_result& result) {
  // The client's header bound; a read bound small enough for inputs of a few KiB to pass it.
  constexpr http::response_read_limits kLimits{16 * 1024, 6 * 1024};
  return http::read_response(
      stream, buffer, kLimits, [] {}, [] { return std::string("timeout after 15s"); },
      "203.0.113.5:443", result);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t step = std::size_t{data[0]} + 1;
  asio::io_context ioc(1);
  memory_stream stream(ioc.get_executor(),
                       std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), step);
  beast::flat_buffer buffer;
  http::attempt_result result;
  std::optional<http::exchange_status> status;
  asio::co_spawn(ioc, read(stream, buffer, result),
                 [&status](std::exception_ptr e, http::exchange_status s) {
                   if (e) bug("the response reader threw");
                   status = s;
                 });
  ioc.run();
  if (!status) bug("the response reader never finished");

  constexpr std::size_t kPrefix = http::delivery_client::kBodyPrefixBytes;
  const auto& kept = result.body_prefix;
  if (kept.size() > kPrefix) bug("the kept body exceeds its bound");
  if (result.status_code == 0 && result.error.empty()) bug("neither a response nor an error");
  if (result.status_code != 0 && (result.status_code < 100 || result.status_code > 999)) {
    bug("a status code outside 100..999");
  }
  if (*status == http::exchange_status::reusable && result.status_code == 0) {
    bug("a connection kept for reuse after no response");
  }
  return 0;
}
