#pragma once
// How the delivery client reads a receiver's answer (delivery_client.hpp says what it keeps):
// the final response head after any 1xx, its status and Retry-After, the first kBodyPrefixBytes
// of the body cut on a UTF-8 boundary, and whether the connection may serve another request.
// Generic over the stream, so that the client reads a TCP or TLS stream with it and the fuzz
// target (tests/fuzz/outbound_response_fuzz.cpp) reads bytes held in memory, through the same code.
//
// Thread safety: none; one read per stream at a time, on the stream's executor.

#include "http/outbound/delivery_client.hpp"
#include "http/server/types.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hookd::http {

// 1xx answers (100 Continue, 103 Early Hints) skipped before the final response; a server that
// sends more than this is not speaking HTTP in good faith.
inline constexpr int kMaxInformationalResponses = 8;

enum class exchange_status {
  reusable,  // a complete response; the connection may serve another request
  done,      // a response (or a failure) after which the connection is closed
  stale,     // failed before a single response byte: a pooled connection's peer had gone
};

struct response_read_limits {
  std::uint32_t max_header_bytes = 16 * 1024;  // client_options::max_response_header_bytes
  std::size_t max_read_bytes = 64 * 1024;      // client_options::max_response_read_bytes
};

// The longest prefix of at most `max` bytes that does not end inside a UTF-8 sequence. Only
// continuation bytes are stepped over (at most 3): invalid input is cut like any other.
inline void cut_on_utf8_boundary(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t cut = max;
  for (int back = 0; back < 3 && cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U;
       ++back) {
    --cut;
  }
  if ((static_cast<unsigned char>(s[cut]) & 0xC0U) == 0x80U) cut = max;  // not UTF-8 anyway
  s.resize(cut);
}

// Reads one response from `stream` (bytes already read ahead wait in `buffer`) into `result`.
// `before_read()` runs before every read (the client sets the attempt's deadline there);
// `timeout_text()` begins the error of a read that timed out ("timeout after 15s"); `remote`
// names the peer in errors.
template <class Stream, class BeforeRead, class TimeoutText>
asio::awaitable<exchange_status> read_response(Stream& stream, beast::flat_buffer& buffer,
                                               response_read_limits limits, BeforeRead before_read,
                                               TimeoutText timeout_text, std::string_view remote,
                                               attempt_result& result) {
  constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
  constexpr std::size_t kBodyPrefixBytes = delivery_client::kBodyPrefixBytes;

  // The head of the final response, after any 1xx.
  std::optional<bhttp::response_parser<bhttp::buffer_body>> parser;
  for (int informational = 0;; ++informational) {
    parser.emplace();
    parser->header_limit(limits.max_header_bytes);
    parser->body_limit(boost::none);  // enforced below: the excess is discarded, not an error
    before_read();
    auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, *parser, use_tuple);
    (void)n;
    if (ec) {
      const bool nothing = informational == 0 && !parser->got_some() && buffer.size() == 0;
      if (ec == beast::error::timeout) {
        result.timed_out = true;
        result.error = timeout_text() + " waiting for the response from " + std::string(remote);
        co_return exchange_status::done;
      }
      if (ec == bhttp::error::end_of_stream ||
          (nothing && (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated))) {
        result.error = std::string(remote) + " closed the connection without a response";
      } else {
        result.error =
            "reading the response from " + std::string(remote) + " failed: " + ec.message();
      }
      co_return nothing ? exchange_status::stale : exchange_status::done;
    }
    const auto status = static_cast<int>(parser->get().result_int());
    if (status >= 200 || status == 101 || informational + 1 >= kMaxInformationalResponses) break;
  }

  auto& head = parser->get();
  result.status_code = static_cast<int>(head.result_int());
  if (auto it = head.find(bhttp::field::retry_after); it != head.end()) {
    result.retry_after = std::string(it->value());
  }

  // The body: keep the prefix, count the rest, give up on the connection past the read bound.
  std::array<char, 8192> chunk;  // not zeroed: the parser writes what it holds
  std::string kept;
  std::uint64_t total = 0;
  const auto keep = [&](std::size_t got) {
    total += got;
    if (kept.size() <= kBodyPrefixBytes) {
      kept.append(chunk.data(), std::min(got, kBodyPrefixBytes + 1 - kept.size()));
    }
  };
  bool complete = parser->is_done();
  bool failed = false;
  // Most answers are small and arrive in one segment with their head, so the body is in `buffer`
  // already: parse it from there, as Beast's read would, without starting an asynchronous read
  // (its composed operation, timer and posted completion were ~5 000 instructions of a
  // delivery, bench/README.md, issue #15). What is not there yet is read below.
  while (!complete && buffer.size() != 0 && total <= limits.max_read_bytes) {
    head.body().data = chunk.data();
    head.body().size = chunk.size();
    boost::system::error_code ec;
    const std::size_t used = parser->put(buffer.data(), ec);
    buffer.consume(used);
    const std::size_t got = chunk.size() - head.body().size;
    keep(got);
    complete = parser->is_done();
    if (ec == bhttp::error::need_more) break;  // the rest is still on its way
    if (ec && ec != bhttp::error::need_buffer) {
      failed = true;  // a malformed body: like a failed read below
      break;
    }
    if (used == 0 && got == 0) break;
  }
  while (!complete && !failed && total <= limits.max_read_bytes) {
    head.body().data = chunk.data();
    head.body().size = chunk.size();
    before_read();
    auto [ec, n] = co_await bhttp::async_read(stream, buffer, *parser, use_tuple);
    (void)n;
    keep(chunk.size() - head.body().size);
    if (ec && ec != bhttp::error::need_buffer) break;  // best effort: the head already counts
    complete = parser->is_done();
  }
  cut_on_utf8_boundary(kept, kBodyPrefixBytes);
  result.body_prefix = std::move(kept);

  const bool reusable =
      complete && head.keep_alive() && result.status_code != 101 && buffer.size() == 0;
  co_return reusable ? exchange_status::reusable : exchange_status::done;
}

}  // namespace hookd::http
