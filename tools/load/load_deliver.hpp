#pragma once
// hookd-load's deliver scenario: a tracker of the events it ingested and the deliveries that came
// back, and the HTTP receiver those deliveries arrive at (127.0.0.1, port 0, keep-alive, each
// Standard Webhooks signature verified with the secret returned when the webhook was created).
//
// Events are numbered (seq) by the tracker; event seq goes to project seq % projects, whose W
// webhooks point at /d/<g> with g = project * W + j. A delivery is identified by (seq, j), so a
// retry of one already seen is a duplicate, and its latency runs from the event's intended send
// time to that first arrival.

#include "core/common/latency_histogram.hpp"
#include "core/delivery/signing.hpp"
#include "tools/load/load_http.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/json.hpp>

#include <memory>
#include <set>

namespace hookd::load {

// Thread-safe: ingest workers on any shard and the receiver call it concurrently.
class delivery_tracker {
 public:
  delivery_tracker(std::size_t webhooks_per_project, std::size_t projects)
      : per_project_(webhooks_per_project), projects_(projects) {}

  // Numbers a new event before it is sent. `measured`: sent in the measured time.
  std::uint64_t begin_event(bool measured, clock::time_point intended) {
    std::lock_guard lock(mutex_);
    const std::uint64_t seq = events_.size();
    events_.push_back({intended, 0, measured ? kMeasured : std::uint8_t{0}});
    const std::size_t bits_needed = (events_.size() * per_project_ + 63) / 64;
    if (words_.size() < bits_needed) words_.resize(bits_needed, 0);
    return seq;
  }

  // hookd answered 202 for the event, saying it made `accepted` deliveries.
  void confirm(std::uint64_t seq, std::uint64_t accepted) {
    std::lock_guard lock(mutex_);
    event_state& e = events_.at(seq);
    if ((e.flags & kMeasured) == 0 || (e.flags & kConfirmed) != 0) return;
    e.flags |= kConfirmed;
    ++confirmed_;
    expected_ += per_project_;
    accepted_ += accepted;
    received_confirmed_ += e.arrived;
  }

  enum class arrival { first, duplicate, unknown };

  // A delivery of event `seq` reached webhook `hook` (its global index).
  arrival arrive(std::size_t hook, std::uint64_t seq, clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (seq >= events_.size() || hook / per_project_ != seq % projects_) {
      ++unknown_;
      return arrival::unknown;
    }
    const std::uint64_t bit = seq * per_project_ + hook % per_project_;
    std::uint64_t& word = words_[bit / 64];
    const std::uint64_t mask = std::uint64_t{1} << (bit % 64);
    if ((word & mask) != 0) {
      ++duplicates_;
      return arrival::duplicate;
    }
    word |= mask;
    event_state& e = events_[seq];
    ++e.arrived;
    if ((e.flags & kMeasured) != 0) {
      ++deliveries_;
      latency_.record(micros_between(e.intended, now));
      last_arrival_ = std::max(last_arrival_, now);
      if ((e.flags & kConfirmed) != 0) ++received_confirmed_;
    }
    return arrival::first;
  }

  void signature_error() {
    std::lock_guard lock(mutex_);
    ++signature_errors_;
  }

  // A request to the receiver that is no delivery of ours (unknown path, no event number).
  void unknown_arrival() {
    std::lock_guard lock(mutex_);
    ++unknown_;
  }

  struct snapshot {
    std::uint64_t events = 0;      // measured events hookd accepted (202)
    std::uint64_t accepted = 0;    // the deliveries hookd said it made for them
    std::uint64_t expected = 0;    // events x webhooks per project
    std::uint64_t deliveries = 0;  // first arrivals of measured events' deliveries
    std::uint64_t received_of_expected = 0;
    std::uint64_t duplicates = 0, unknown = 0, signature_errors = 0;
    clock::time_point last_arrival{};
    latency_histogram latency;

    std::uint64_t missing() const { return expected - received_of_expected; }
  };

  snapshot read(bool with_latency) const {
    std::lock_guard lock(mutex_);
    snapshot s;
    s.events = confirmed_;
    s.accepted = accepted_;
    s.expected = expected_;
    s.deliveries = deliveries_;
    s.received_of_expected = received_confirmed_;
    s.duplicates = duplicates_;
    s.unknown = unknown_;
    s.signature_errors = signature_errors_;
    s.last_arrival = last_arrival_;
    if (with_latency) s.latency = latency_;
    return s;
  }

 private:
  static constexpr std::uint8_t kMeasured = 1, kConfirmed = 2;
  struct event_state {
    clock::time_point intended;
    std::uint32_t arrived;
    std::uint8_t flags;
  };

  const std::size_t per_project_, projects_;
  mutable std::mutex mutex_;
  std::vector<event_state> events_;
  std::vector<std::uint64_t> words_;  // one bit per (event, webhook of its project)
  std::uint64_t confirmed_ = 0, accepted_ = 0, expected_ = 0, deliveries_ = 0;
  std::uint64_t received_confirmed_ = 0, duplicates_ = 0, unknown_ = 0, signature_errors_ = 0;
  clock::time_point last_arrival_{};
  latency_histogram latency_;
};

// The webhook receiver. Runs on one io_context (the controller's); not thread-safe otherwise.
class delivery_receiver {
 public:
  static constexpr auto kIoTimeout = 30s;

  delivery_receiver(asio::io_context& ioc, delivery_tracker& tracker)
      : ioc_(ioc), tracker_(tracker), acceptor_(ioc) {}

  // Binds 127.0.0.1:0; the port. Throws on failure.
  std::uint16_t listen() {
    const tcp::endpoint where(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(where.protocol());
    acceptor_.bind(where);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    return acceptor_.local_endpoint().port();
  }

  // The secret of webhook `hook` (its global index); before start().
  void add_secret(std::size_t hook, webhook_signer signer) {
    if (signers_.size() <= hook) signers_.resize(hook + 1);
    signers_[hook] = std::move(signer);
  }

  void start(wait_group& tasks) {
    asio::co_spawn(ioc_, accept_loop(*this, tasks), tasks.completion());
  }

  // Stops accepting and ends every connection; their coroutines finish promptly.
  void stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto* stream : live_) stream->socket().close(ignored);
  }

 private:
  static asio::awaitable<void> accept_loop(delivery_receiver& self, wait_group& tasks) {
    while (!self.stopping_) {
      auto [ec, socket] = co_await self.acceptor_.async_accept(use_tuple);
      if (ec) {
        if (self.stopping_ || ec == asio::error::operation_aborted) co_return;
        continue;  // EMFILE and the like: keep serving the connections we have
      }
      asio::co_spawn(self.ioc_, serve(self, std::move(socket)), tasks.completion());
    }
  }

  static asio::awaitable<void> serve(delivery_receiver& self, tcp::socket socket) {
    auto stream = std::make_unique<beast::tcp_stream>(std::move(socket));
    self.live_.insert(stream.get());
    struct unregister {
      delivery_receiver& self;
      beast::tcp_stream* stream;
      ~unregister() { self.live_.erase(stream); }
    } guard{self, stream.get()};
    beast::flat_buffer buffer;
    while (!self.stopping_) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(1024 * 1024);
      stream->expires_after(kIoTimeout);
      auto [ec, n] = co_await bhttp::async_read(*stream, buffer, parser, use_tuple);
      (void)n;
      if (ec) co_return;
      const auto& req = parser.get();
      bhttp::response<bhttp::empty_body> res{self.answer(req), req.version()};
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      stream->expires_after(kIoTimeout);
      auto [wec, written] = co_await bhttp::async_write(*stream, res, use_tuple);
      (void)written;
      if (wec || !res.keep_alive()) co_return;
    }
  }

  bhttp::status answer(const bhttp::request<bhttp::string_body>& req) {
    const auto now = clock::now();
    const std::string_view target = req.target();
    std::optional<std::uint64_t> hook;
    if (target.starts_with("/d/")) hook = parse_count(target.substr(3), 1'000'000'000);
    if (!hook || *hook >= signers_.size() || !signers_[*hook]) {
      tracker_.unknown_arrival();
      return bhttp::status::not_found;
    }
    const auto header = [&](std::string_view name) {
      auto it = req.find(name);
      return it == req.end() ? std::string_view() : std::string_view(it->value());
    };
    const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    const auto verified =
        signers_[*hook]->verify(header("webhook-id"), header("webhook-timestamp"), req.body(),
                                header("webhook-signature"), unix_now);
    if (!verified) {
      tracker_.signature_error();
      return bhttp::status::unauthorized;
    }
    boost::system::error_code ec;
    const boost::json::value body = boost::json::parse(req.body(), ec);
    const boost::json::value* seq = nullptr;
    if (!ec && body.is_object()) {
      if (const auto* data = body.as_object().if_contains("data"); data && data->is_object()) {
        seq = data->as_object().if_contains("seq");
      }
    }
    if (seq == nullptr || !(seq->is_int64() || seq->is_uint64())) {
      tracker_.unknown_arrival();
      return bhttp::status::bad_request;
    }
    const auto number =
        seq->is_uint64() ? seq->get_uint64() : static_cast<std::uint64_t>(seq->get_int64());
    tracker_.arrive(static_cast<std::size_t>(*hook), number, now);
    return bhttp::status::ok;
  }

  asio::io_context& ioc_;
  delivery_tracker& tracker_;
  tcp::acceptor acceptor_;
  std::vector<std::optional<webhook_signer>> signers_;
  std::set<beast::tcp_stream*> live_;
  bool stopping_ = false;
};

}  // namespace hookd::load
