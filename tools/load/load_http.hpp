#pragma once
// hookd-load's client side: raw HTTP/1.1 request bytes built once or into a reused buffer, a
// keep-alive connection that reconnects after a close, per-thread shards with their statistics,
// and a wait group for the coroutines a controller starts on them.
//
// Threading: a shard is one io_context run by one thread; a client_conn lives on its shard and is
// only touched from that thread. shard::stats is shared with the controller's progress reports
// and guarded by shard::mutex (uncontended: the controller takes it once a second).

#include "core/common/latency_histogram.hpp"
#include "tools/load/load_options.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hookd::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A list of 100 webhooks is well under 100 KiB; this only stops a runaway answer.
constexpr std::uint64_t kMaxResponseBody = 64ull * 1024 * 1024;

// Whole microseconds from `from` to `to` on one clock (steady, or the wall clock for the
// kernel's receive times), 0 when `to` is not later.
template <class TimePoint>
std::uint64_t micros_between(TimePoint from, TimePoint to) {
  if (to <= from) return 0;
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(to - from).count());
}

// ---------------------------------------------------------------- request bytes

// What every request to one hookd with one token has in common. Requests are written as raw
// bytes (no serializer, no header container): building one is a few appends into a buffer whose
// capacity is kept from request to request.
class request_base {
 public:
  request_base(const endpoint_url& url, std::string_view token)
      : host_(url.host_header), prefix_(url.prefix) {
    auth_ = "Authorization: Bearer ";
    auth_ += token;
    auth_ += "\r\n";
  }

  // `path` starts with '/' and comes after the URL's prefix; an empty `body` sends none, any
  // other is sent as application/json.
  void append(std::string& out, std::string_view method, std::string_view path,
              std::string_view body = {}) const {
    out += method;
    out += ' ';
    out += prefix_;
    out += path;
    out += " HTTP/1.1\r\nHost: ";
    out += host_;
    out += "\r\nUser-Agent: hookd-load\r\n";
    out += auth_;
    if (!body.empty()) {
      out += "Content-Type: application/json\r\nContent-Length: ";
      out += std::to_string(body.size());
      out += "\r\n";
    }
    out += "\r\n";
    out += body;
  }

  std::string build(std::string_view method, std::string_view path,
                    std::string_view body = {}) const {
    std::string out;
    append(out, method, path, body);
    return out;
  }

 private:
  std::string host_, prefix_, auth_;
};

// ---------------------------------------------------------------- statistics

enum class outcome { ok, connect_error, timeout, io_error, cancelled };
enum error_kind : std::size_t { kConnect, kTimeout, kIo, kStatus, kErrorKinds };

struct op_stats {
  std::uint64_t requests = 0;
  latency_histogram latency;
};

struct shard_stats {
  // Measured requests that ended: answered (any status) or failed (connect, timeout, io).
  std::uint64_t requests = 0;
  std::array<std::uint64_t, kErrorKinds> errors{};
  std::array<std::uint64_t, 600> status{};  // answers by status code
  latency_histogram latency;                // measured answers only
  std::array<op_stats, kOpCount> ops;
  clock::time_point last_completion{};
  // Since the last progress line, warmup included.
  std::uint64_t interval_requests = 0, interval_errors = 0;
  latency_histogram interval_latency;
};

class client_conn;

// One client thread: an io_context, the connections on it and their statistics.
struct shard {
  explicit shard(std::size_t index_) : index(index_), watchdog(ioc) {}
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;

  std::size_t index;
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread thread;  // none for shard 0, which runs on main's thread
  asio::steady_timer watchdog;
  bool stopping = false;           // this shard's thread only
  std::vector<client_conn*> live;  // this shard's thread only
  std::mutex mutex;                // guards stats
  shard_stats stats;

  void record(op o, outcome r, unsigned status, bool measured, clock::time_point intended,
              clock::time_point done) {
    const bool answered = r == outcome::ok;
    const bool error = !answered || status < 200 || status > 299;
    const std::uint64_t us = micros_between(intended, done);
    std::lock_guard lock(mutex);
    ++stats.interval_requests;
    if (error) ++stats.interval_errors;
    if (answered) stats.interval_latency.record(us);
    if (!measured) return;
    ++stats.requests;
    stats.last_completion = std::max(stats.last_completion, done);
    auto& per_op = stats.ops[static_cast<std::size_t>(o)];
    ++per_op.requests;
    switch (r) {
      case outcome::ok:
        ++stats.status[std::min<unsigned>(status, 599)];
        if (error) ++stats.errors[kStatus];
        stats.latency.record(us);
        per_op.latency.record(us);
        break;
      case outcome::connect_error:
        ++stats.errors[kConnect];
        break;
      case outcome::timeout:
        ++stats.errors[kTimeout];
        break;
      case outcome::io_error:
      case outcome::cancelled:
        ++stats.errors[kIo];
        break;
    }
  }
};

// ---------------------------------------------------------------- connection

// A keep-alive HTTP/1.1 connection to hookd, one request at a time. Connects lazily and again
// after the server closed it. The request timeout is enforced by the shard's watchdog (a deadline
// per request checked every few milliseconds), which costs one store per request instead of a
// timer per read and write.
class client_conn {
 public:
  client_conn(shard& home, const tcp::endpoint& server, clock::duration timeout)
      : home_(home), server_(server), timeout_(timeout), socket_(home.ioc), pace_(home.ioc) {
    home_.live.push_back(this);
  }
  ~client_conn() {
    auto it = std::find(home_.live.begin(), home_.live.end(), this);
    if (it != home_.live.end()) {
      *it = home_.live.back();
      home_.live.pop_back();
    }
  }
  client_conn(const client_conn&) = delete;
  client_conn& operator=(const client_conn&) = delete;

  // Sends `request` (complete bytes) and reads the answer into response().
  asio::awaitable<outcome> exchange(std::string_view request) {
    if (cancelled_) co_return outcome::cancelled;
    timed_out_ = false;
    deadline_ = clock::now() + timeout_;
    busy_ = true;
    const outcome r = co_await exchange_once(request);
    busy_ = false;
    co_return r;
  }

  // The last answer; valid after exchange() returned ok, until the next exchange().
  const bhttp::response<bhttp::string_body>& response() const { return parser_->get(); }
  unsigned status() const { return parser_->get().result_int(); }
  // Why the last exchange failed, for messages ("Connection refused").
  std::string last_error() const { return timed_out_ ? "timed out" : last_error_.message(); }

  // Waits until `when` (pacing, back-off); false when cancelled or woken.
  asio::awaitable<bool> sleep_until(clock::time_point when) {
    if (cancelled_) co_return false;
    pace_.expires_at(when);
    auto [ec] = co_await pace_.async_wait(use_tuple);
    co_return !ec && !cancelled_;
  }

  // Ends a pacing wait early (the worker then re-checks whether to stop).
  void wake() { pace_.cancel(); }

  // Hard stop: the exchange in flight ends with `cancelled`, and so does every later one.
  void cancel() {
    cancelled_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    pace_.cancel();
  }

  // Called by the watchdog on the shard's thread.
  void expire_if_due(clock::time_point now) {
    if (busy_ && now >= deadline_ && !timed_out_) {
      timed_out_ = true;
      boost::system::error_code ignored;
      socket_.cancel(ignored);
    }
  }

 private:
  asio::awaitable<outcome> exchange_once(std::string_view request) {
    if (!socket_.is_open()) {
      auto [ec] = co_await socket_.async_connect(server_, use_tuple);
      if (ec) {
        last_error_ = ec;
        close();
        co_return cancelled_ ? outcome::cancelled : outcome::connect_error;
      }
      boost::system::error_code ignored;
      socket_.set_option(tcp::no_delay(true), ignored);
      buffer_.clear();
    }
    auto [wec, written] = co_await asio::async_write(socket_, asio::buffer(request), use_tuple);
    (void)written;
    if (wec) co_return failed(wec);
    parser_.emplace();
    parser_->body_limit(kMaxResponseBody);
    auto [rec, read] = co_await bhttp::async_read(socket_, buffer_, *parser_, use_tuple);
    (void)read;
    if (rec) co_return failed(rec);
    if (!parser_->get().keep_alive()) close();
    co_return outcome::ok;
  }

  outcome failed(boost::system::error_code ec) {
    last_error_ = ec;
    close();
    if (cancelled_) return outcome::cancelled;
    return timed_out_ ? outcome::timeout : outcome::io_error;
  }

  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  shard& home_;
  tcp::endpoint server_;
  clock::duration timeout_;
  tcp::socket socket_;
  asio::steady_timer pace_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  clock::time_point deadline_{};
  boost::system::error_code last_error_;
  bool busy_ = false;
  bool timed_out_ = false;
  bool cancelled_ = false;
};

// Expires the requests of a shard's connections that passed their deadline. Runs until
// shard::stopping is set and the timer cancelled.
inline asio::awaitable<void> run_watchdog(shard& s, clock::duration period) {
  while (!s.stopping) {
    s.watchdog.expires_after(period);
    (void)co_await s.watchdog.async_wait(use_tuple);
    const auto now = clock::now();
    for (client_conn* c : s.live) c->expire_if_due(now);
  }
}

// ---------------------------------------------------------------- wait group

// Counts coroutines a controller started (on any shard) until they finish, and keeps the first
// exception. Every member is used on the controller's executor only; completion() hands out a
// handler that posts there from whichever thread the coroutine ended on.
class wait_group {
 public:
  explicit wait_group(asio::any_io_executor controller)
      : controller_(std::move(controller)), timer_(controller_) {}
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;

  // For asio::co_spawn(..., completion()): counts one more coroutine.
  auto completion() {
    ++pending_;
    return [this](std::exception_ptr e) {
      asio::post(controller_, [this, e] { done(e); });
    };
  }

  std::size_t pending() const { return pending_; }
  const std::string& first_error() const { return first_error_; }

  // Returns when every coroutine finished or at `deadline`, whichever comes first.
  asio::awaitable<void> wait_until(clock::time_point deadline) {
    while (pending_ > 0 && clock::now() < deadline) {
      timer_.expires_at(deadline);
      (void)co_await timer_.async_wait(use_tuple);
    }
  }

 private:
  void done(std::exception_ptr e) {
    if (e && first_error_.empty()) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& what) {
        first_error_ = what.what();
      } catch (...) {
        first_error_ = "unknown exception";
      }
    }
    if (--pending_ == 0) timer_.cancel();
  }

  asio::any_io_executor controller_;
  asio::steady_timer timer_;
  std::size_t pending_ = 0;
  std::string first_error_;
};

}  // namespace hookd::load
