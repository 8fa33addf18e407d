// The receiver's bodies (tests/support/delivery_fixture.hpp), compiled once into hookd_test_support
// (tests/CMakeLists.txt) instead of in every delivery test file: its coroutines instantiate
// Beast's asynchronous reads and writes, the longest part of such a file's compile.

#include "support/delivery_fixture.hpp"

#include <algorithm>
#include <cctype>

namespace hookd::test {

receiver::receiver() : acceptor_(ioc_, {asio::ip::make_address("127.0.0.1"), 0}) {
  asio::co_spawn(ioc_, accept_loop(*this), [this](std::exception_ptr) { task_done(); });
  ++tasks_;
  thread_ = std::thread([this] { ioc_.run(); });
}

void receiver::release_held() {
  asio::post(ioc_, [this] {
    released_ = true;
    for (asio::steady_timer* wait : holding_) wait->cancel();
  });
}

asio::awaitable<void> receiver::accept_loop(receiver& self) {
  for (;;) {
    auto [ec, socket] = co_await self.acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    {
      std::lock_guard lock(self.mutex_);
      ++self.connections_;
    }
    ++self.tasks_;
    asio::co_spawn(self.ioc_, session(self, std::move(socket)),
                   [&self](std::exception_ptr) { self.task_done(); });
  }
}

asio::awaitable<void> receiver::session(receiver& self, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(1024 * 1024);
    stream.expires_after(kIoTimeout);
    auto [read_ec, n] =
        co_await bhttp::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (read_ec) co_return;
    auto req = parser.release();

    received_request got;
    got.path = std::string(req.target());
    for (const auto& field : req) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      got.headers[name] = std::string(field.value());
    }
    got.body = req.body();
    const scripted_reply reply = self.next_reply(got.path);
    got.answered = reply.status;
    got.at = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(self.mutex_);
      got.concurrent = ++self.concurrent_;
      self.max_concurrent_ = std::max(self.max_concurrent_, self.concurrent_);
      if (self.keep_requests_) {
        self.requests_.push_back(std::move(got));
      } else {
        ++self.forgotten_;
      }
    }

    if (reply.delay > 0ms) {
      asio::steady_timer timer(stream.get_executor());
      timer.expires_after(std::min<std::chrono::milliseconds>(reply.delay, kIoTimeout));
      (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (reply.hold && !self.released_) {
      asio::steady_timer wait(stream.get_executor(), kIoTimeout);
      self.holding_.insert(&wait);
      {
        std::lock_guard lock(self.mutex_);
        ++self.held_;
      }
      (void)co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
      self.holding_.erase(&wait);
      {
        std::lock_guard lock(self.mutex_);
        --self.held_;
      }
    }
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), 11};
    for (const auto& [name, value] : reply.headers) res.set(name, value);
    res.set(bhttp::field::content_type, "text/plain");
    res.body() = reply.body;
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    stream.expires_after(kIoTimeout);
    auto [write_ec, written] =
        co_await bhttp::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    (void)written;
    {
      std::lock_guard lock(self.mutex_);
      --self.concurrent_;
      if (!write_ec) ++self.answered_;
    }
    if (write_ec || !res.keep_alive()) co_return;
  }
}

scripted_reply receiver::next_reply(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (auto it = scripts_.find(path); it != scripts_.end() && !it->second.empty()) {
    scripted_reply r = std::move(it->second.front());
    it->second.pop_front();
    return r;
  }
  if (auto it = defaults_.find(path); it != defaults_.end()) return it->second;
  return {};
}

}  // namespace hookd::test
