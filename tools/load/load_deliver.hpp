#pragma once
// hookd-load's deliver scenario: a tracker of the events it ingested and the deliveries that came
// back, and the HTTP receiver those deliveries arrive at (127.0.0.1, port 0, keep-alive, each
// Standard Webhooks signature verified with the secret returned when the webhook was created).
//
// Events are numbered (seq) by the tracker; event seq goes to project seq % projects, whose W
// webhooks point at /d/<g> with g = project * W + j. A delivery is identified by (seq, j), so a
// retry of one already seen is a duplicate, and its latency runs from the event's intended send
// time to that first arrival. A second latency leaves this process's own delays out of it: from
// the moment the event's request was handed to the kernel to the kernel's receive time of the
// delivery (SO_TIMESTAMPNS), so that a busy load generator, late in sending or in reading, does not
// count as hookd's time (bench/README.md, "hookd's share of ingest -> first attempt").

#include "core/common/latency_histogram.hpp"
#include "core/delivery/signing.hpp"
#include "tools/load/load_http.hpp"

#include <boost/asio/compose.hpp>
#include <boost/json.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

namespace hookd::load {

using wall_clock = std::chrono::system_clock;

// Thread-safe: ingest workers on any shard and the receiver call it concurrently.
class delivery_tracker {
 public:
  delivery_tracker(std::size_t webhooks_per_project, std::size_t projects)
      : per_project_(webhooks_per_project), projects_(projects) {}

  // Numbers a new event before it is sent. `measured`: sent in the measured time.
  std::uint64_t begin_event(bool measured, clock::time_point intended) {
    std::lock_guard lock(mutex_);
    const std::uint64_t seq = events_.size();
    events_.push_back({intended, {}, 0, measured ? kMeasured : std::uint8_t{0}});
    const std::size_t bits_needed = (events_.size() * per_project_ + 63) / 64;
    if (words_.size() < bits_needed) words_.resize(bits_needed, 0);
    return seq;
  }

  // Event `seq`'s request is being written now (`at`, on the wall clock: the kernel's receive
  // times are on it). Also how late that is against its intended time.
  void sending(std::uint64_t seq, wall_clock::time_point at) {
    const auto now = clock::now();
    std::lock_guard lock(mutex_);
    event_state& e = events_.at(seq);
    e.sent = at;
    if ((e.flags & kMeasured) != 0) send_late_.record(micros_between(e.intended, now));
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

  // A delivery of event `seq` reached webhook `hook` (its global index): read at `now`; the kernel
  // received its last segment at `received` (none when the kernel gave no time).
  arrival arrive(std::size_t hook, std::uint64_t seq, clock::time_point now,
                 std::optional<wall_clock::time_point> received) {
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
      if (received && e.sent != wall_clock::time_point{}) {
        sent_to_received_.record(micros_between(e.sent, *received));
      }
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
    latency_histogram latency;           // from the event's intended time to the delivery read
    latency_histogram sent_to_received;  // from its request written to the delivery received
    latency_histogram send_late;         // from its intended time to its request written

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
    if (with_latency) {
      s.latency = latency_;
      s.sent_to_received = sent_to_received_;
      s.send_late = send_late_;
    }
    return s;
  }

 private:
  static constexpr std::uint8_t kMeasured = 1, kConfirmed = 2;
  struct event_state {
    clock::time_point intended;
    wall_clock::time_point sent;  // epoch: not yet
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
  latency_histogram latency_, sent_to_received_, send_late_;
};

// A TCP socket whose reads also return the kernel's receive time of what they read
// (SO_TIMESTAMPNS, which an accepted socket inherits from its listener): received() is when the
// newest segment of the last read reached the socket, on the wall clock. An AsyncReadStream for
// Beast; writes go to socket() directly.
class stamped_socket {
 public:
  using executor_type = tcp::socket::executor_type;

  explicit stamped_socket(tcp::socket socket) : socket_(std::move(socket)) {}

  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& socket() { return socket_; }
  [[nodiscard]] std::optional<wall_clock::time_point> received() const { return received_; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    // Reads at once when data is waiting (completing through a post, never inline), else waits
    // for the socket to become readable and reads then.
    return asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        [this, buffers, read = std::optional<std::size_t>()](
            auto& self, boost::system::error_code ec = {}) mutable {
          if (read) return self.complete({}, *read);
          if (ec) return self.complete(ec, 0);
          const auto n = read_now(buffers, ec);
          if (ec) return self.complete(ec, 0);
          if (!n) return socket_.async_wait(tcp::socket::wait_read, std::move(self));
          read = *n;
          asio::post(socket_.get_executor(), std::move(self));
        },
        token, socket_);
  }

 private:
  // One recvmsg: the bytes read, nullopt when nothing is waiting, or an error (eof at the end).
  template <class MutableBuffers>
  std::optional<std::size_t> read_now(const MutableBuffers& buffers,
                                      boost::system::error_code& ec) {
    std::array<iovec, 8> iov{};
    std::size_t count = 0;
    for (auto it = asio::buffer_sequence_begin(buffers);
         it != asio::buffer_sequence_end(buffers) && count < iov.size(); ++it) {
      const asio::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      iov[count++] = iovec{b.data(), b.size()};
    }
    if (count == 0) return 0;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(timespec))> control{};
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    ssize_t n = 0;
    do {
      n = ::recvmsg(socket_.native_handle(), &msg, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
      ec.assign(errno, boost::system::system_category());
      return std::nullopt;
    }
    if (n == 0) {
      ec = asio::error::eof;
      return std::nullopt;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec ts{};
        std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
        received_ = wall_clock::time_point(std::chrono::duration_cast<wall_clock::duration>(
            std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
      }
    }
    return static_cast<std::size_t>(n);
  }

  tcp::socket socket_;
  std::optional<wall_clock::time_point> received_;
};

// The webhook receiver. Runs on one io_context (the controller's); not thread-safe otherwise.
class delivery_receiver {
 public:
  delivery_receiver(asio::io_context& ioc, delivery_tracker& tracker)
      : ioc_(ioc), tracker_(tracker), acceptor_(ioc) {}

  // Binds 127.0.0.1:0; the port. Throws on failure.
  std::uint16_t listen() {
    const tcp::endpoint where(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(where.protocol());
    acceptor_.bind(where);
    // Accepted sockets inherit it. The kernel turns its receive timestamps on a moment after the
    // first socket asks (a deferred switch), well before the measured deliveries.
    const int on = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0) {
      throw std::runtime_error(std::string("SO_TIMESTAMPNS: ") + std::strerror(errno));
    }
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
    for (auto* socket : live_) socket->close(ignored);
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

  // No timeout of its own: hookd ends its connections, and stop() closes whatever is left.
  static asio::awaitable<void> serve(delivery_receiver& self, tcp::socket socket) {
    stamped_socket stream(std::move(socket));
    self.live_.insert(&stream.socket());
    struct unregister {
      delivery_receiver& self;
      tcp::socket* socket;
      ~unregister() { self.live_.erase(socket); }
    } guard{self, &stream.socket()};
    beast::flat_buffer buffer;
    while (!self.stopping_) {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.body_limit(1024 * 1024);
      auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, use_tuple);
      (void)n;
      if (ec) co_return;
      const auto& req = parser.get();
      bhttp::response<bhttp::empty_body> res{self.answer(req, stream.received()), req.version()};
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      auto [wec, written] = co_await bhttp::async_write(stream.socket(), res, use_tuple);
      (void)written;
      if (wec || !res.keep_alive()) co_return;
    }
  }

  bhttp::status answer(const bhttp::request<bhttp::string_body>& req,
                       std::optional<wall_clock::time_point> received) {
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
    tracker_.arrive(static_cast<std::size_t>(*hook), number, now, received);
    return bhttp::status::ok;
  }

  asio::io_context& ioc_;
  delivery_tracker& tracker_;
  tcp::acceptor acceptor_;
  std::vector<std::optional<webhook_signer>> signers_;
  std::set<tcp::socket*> live_;
  bool stopping_ = false;
};

}  // namespace hookd::load
