// The HTTP/1.1 transport.
//
// Threads: one io_context run by N threads. With N > 1 every connection gets its own strand, so a
// session never runs on two threads at once while different connections proceed in parallel;
// with N = 1 the io_context's own executor already guarantees that, and the strand is skipped.
//
// Pipelining: each session reads and answers requests strictly one after another. Bytes a client
// sends ahead (request 2 while request 1 is being handled) stay in the session's flat_buffer and
// in the socket's receive buffer, where TCP flow control bounds them; responses therefore leave
// in request order with at most one queued per connection, which also honours max_pipelined.
// A reader/writer pair with a response queue would overlap handler work across pipelined
// requests, but clients that pipeline are rare, and this design cannot reorder.
//
// Timeouts: every read and write runs under a deadline. The wait for the first byte of a
// keep-alive request uses idle_timeout; reading the rest of a request head, a request body, and
// writing a response each use header_timeout (the peer must make progress). The time a handler
// takes is not limited here. A deadline is a time stamp on the connection that one timer per
// connection (the watchdog) checks: setting it is a store, and the timer is re-armed only when it
// fires or when a deadline comes earlier than the one it waits for, so a busy keep-alive
// connection touches its timer about once per header_timeout instead of twice per request (what
// beast::tcp_stream does, with a composed operation around every read and write).
//
// Connection limit: while max_connections sessions are open, the accept loop still accepts (the
// kernel's backlog would otherwise hold clients in silence) but answers the connection with a 503
// problem+json and `Connection: close` at once, without reading a request, then lingers and
// closes like any last response. Refusals in progress are bounded too (kMaxRefusing): past that,
// a connection is closed without a word. Each refusal counts in the metrics; the log gets one line
// per kRefusalLogInterval at most, with the number refused since the previous line.
//
// Shutdown: stop() closes the acceptor and sets `draining_`. A session checks it before waiting
// for another request; sessions already idle (waiting for a first byte) are cancelled at once,
// answer a request that arrived meanwhile with `Connection: close`, and otherwise shut down their
// send side and linger, so that no client sees a reset. Sessions in the middle of a request finish
// it, answering with `Connection: close`; so does a new connection, whose first request is awaited
// rather than cut off. Connections still in the listen backlog stay there when the socket is
// shared with a supervisor (systemd's socket activation), for the next process to accept. After
// drain_timeout the remaining sockets are closed hard; then the threads are joined. Every
// session and the accept loop are counted in `tasks_`, so stop() knows when all have ended.

#include "http/server/server.hpp"

#include "core/common/crypto.hpp"
#include "core/common/log.hpp"
#include "http/api/app.hpp"
#include "http/server/metrics.hpp"
#include "http/server/problem.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <unistd.h>

#include <array>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

namespace hookd::http {
namespace {

using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// After the last response on a connection the server shuts down its send side and reads (and
// discards) what the client still sends, for at most this long, before closing. Closing with
// unread data would make the kernel send a reset, which can destroy the response in flight
// (e.g. a 413 sent while the client is still uploading the body).
constexpr std::chrono::milliseconds kLingerTimeout{1'000};
constexpr std::size_t kLingerMaxBytes = 1 << 20;
// After the hard close at drain_timeout, how long stop() still waits for sessions to unwind
// before it stops the io_context regardless (a handler may be stuck on something external).
constexpr std::chrono::milliseconds kHardCloseGrace{1'000};
// How much a session reads while waiting for the first byte of a request.
constexpr std::size_t kFirstReadBytes = 4096;
// Back-off after an accept error that is not ours (EMFILE, ENFILE, ENOBUFS), so it cannot spin.
constexpr std::chrono::milliseconds kAcceptBackoff{50};
// Connections being answered 503 at the limit at once (each lingers up to kLingerTimeout); past
// this a connection beyond the limit is closed unanswered, so a flood cannot pile up descriptors.
constexpr std::size_t kMaxRefusing = 64;
// At most one connections_refused log line per this interval.
constexpr std::chrono::seconds kRefusalLogInterval{10};

// Request ids: 16 random bytes as 32 hex digits. A per-thread xoshiro256** seeded once from
// RAND_bytes is enough: ids must be unique, not secret. Written into `id`, whose capacity the
// session reuses from one request to the next.
void generate_request_id(std::string& id) {
  struct rng {
    std::array<std::uint64_t, 4> s{};
    rng() {
      random_bytes(std::span(reinterpret_cast<std::uint8_t*>(s.data()), sizeof s));
      if (s == std::array<std::uint64_t, 4>{}) s[0] = 1;  // the all-zero state is a fixed point
    }
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t next() {
      const auto result = rotl(s[1] * 5, 7) * 9;
      const auto t = s[1] << 17;
      s[2] ^= s[0];
      s[3] ^= s[1];
      s[1] ^= s[2];
      s[0] ^= s[3];
      s[2] ^= t;
      s[3] = rotl(s[3], 45);
      return result;
    }
  };
  thread_local rng gen;
  static constexpr char kHex[] = "0123456789abcdef";
  id.resize(32);
  for (std::size_t half = 0; half < 2; ++half) {
    auto v = gen.next();
    for (std::size_t i = 0; i < 16; ++i, v >>= 4) id[half * 16 + i] = kHex[v & 0xF];
  }
}

bool valid_request_id(std::string_view v) noexcept {
  if (v.empty() || v.size() > 128) return false;
  for (const char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// The request's id, kept in `storage` (the connection's buffer) until the next request.
std::string_view pick_request_id(const bhttp::fields& f, std::string& storage) {
  std::string_view incoming;
  for (const auto& field : f) {  // the first one, without find()'s case-insensitive tree walk
    if (beast::iequals(field.name_string(), "X-Request-Id")) {
      incoming = field.value();
      break;
    }
  }
  if (valid_request_id(incoming)) {
    storage.assign(incoming.data(), incoming.size());
  } else {
    generate_request_id(storage);
  }
  return storage;
}

// Errors that mean "the bytes are not a valid HTTP/1.1 request" (answered with 400), as opposed
// to the connection ending (EOF, reset, timeout, cancellation: no answer).
bool is_malformed(const beast::error_code& ec) noexcept {
  static const auto& http_category = bhttp::make_error_code(bhttp::error::bad_method).category();
  if (ec.category() != http_category) return false;
  switch (static_cast<bhttp::error>(ec.value())) {
    case bhttp::error::end_of_stream:
    case bhttp::error::partial_message:
    case bhttp::error::need_more:
    case bhttp::error::need_buffer:
      return false;
    default:
      return true;
  }
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) noexcept {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

// A connection as the registry sees it. Everything but construction runs on the session's
// executor (its strand, or the one I/O thread).
struct connection : std::enable_shared_from_this<connection> {
  using clock = std::chrono::steady_clock;
  static constexpr auto kNoDeadline = clock::time_point::max();

  explicit connection(tcp::socket s) : socket(std::move(s)), watchdog(socket.get_executor()) {}

  tcp::socket socket;
  bool idle = false;
  bool refused = false;    // answered 503 at the connection limit; not an open session
  std::string head;        // the response head being written; its capacity is reused
  std::string request_id;  // the current request's id; likewise
  // The request being served and what it is answered with. They live here rather than in
  // serve_one's coroutine frame: Asio recycles frames of up to 1020 bytes per thread, and with a
  // parser inside, the frame was ~3.8 KB, so each request paid an aligned malloc and free for it
  // (and evicted the recycled blocks of the smaller frames, which then paid too).
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
  std::optional<request_context> context;  // what the handler is given
  struct exchange {
    response res;
    unsigned version = 11;
    bool head = false;  // answering HEAD: the headers of the GET, no body
    bool keep_alive = false;
    std::string_view request_id;  // in `request_id` above
    std::string_view route;       // the metrics label; in the router
    std::chrono::steady_clock::time_point started;
  } x;

  // The next read or write must complete within `timeout`; call before starting it.
  void expires_after(clock::duration timeout) {
    deadline_ = clock::now() + timeout;
    if (deadline_ < armed_) arm(deadline_);
  }
  // The operation completed: no deadline until the next expires_after.
  void operation_done() noexcept { deadline_ = kNoDeadline; }
  // Closes the socket (pending operations complete with an error) and stops the watchdog.
  void close() noexcept {
    closed_ = true;
    beast::error_code ignored;
    watchdog.cancel();
    socket.close(ignored);
  }

 private:
  // Waits until `at`. A wait already pending is cancelled (its handler then does nothing).
  void arm(clock::time_point at) {
    armed_ = at;
    watchdog.expires_at(at);
    watchdog.async_wait([self = shared_from_this()](const beast::error_code& ec) {
      if (!ec) self->on_watchdog();
    });
  }
  void on_watchdog() {
    armed_ = kNoDeadline;
    if (closed_) return;
    if (deadline_ == kNoDeadline) return;  // between operations: the next one arms again
    if (deadline_ <= clock::now()) {
      close();  // the peer did not make progress in time
      return;
    }
    arm(deadline_);  // the deadline moved on since this wait began
  }

  asio::steady_timer watchdog;
  clock::time_point deadline_ = kNoDeadline;
  clock::time_point armed_ = kNoDeadline;  // what the watchdog waits for; max: no wait pending
  bool closed_ = false;
};

// What serve_one tells the session loop.
enum class next_step {
  read_next,       // keep-alive: wait for the next request
  close_graceful,  // a final response was sent: shut down the send side, then close
  close_now,       // the peer went away or timed out: close without a word
};

// What a request head calls for.
enum class head_verdict {
  close_now,  // the connection ended or timed out before a head arrived
  answer,     // refused from the head alone: the problem is in the exchange
  read_body,  // a valid head with a body to read
  handle,     // a valid head and nothing more to read
};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

}  // namespace

struct server::impl {
  impl(server_options o, const router& r, app& a) : options(std::move(o)), routes(r), shared(a) {}
  ~impl();

  server_options options;
  const router& routes;
  app& shared;

  std::atomic<bool> draining{false};
  std::atomic<std::size_t> open{0};
  std::atomic<std::size_t> refusing{0};  // connections being answered 503 at the limit

  // The connections_refused log line; only the accept loop touches these.
  std::uint64_t refused_since_log = 0;
  std::chrono::steady_clock::time_point last_refusal_log{};

  std::mutex lifecycle_mutex;  // start/stop
  bool is_started = false;
  bool is_stopped = false;
  std::vector<std::thread> threads;

  std::mutex mutex;  // tasks, connections
  std::condition_variable tasks_done;
  std::size_t tasks = 0;  // the accept loop and every live session
  std::uint64_t next_id = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<connection>> connections;

  // Declared last so that it is destroyed first, while everything sessions touch still exists.
  // The number of threads is the io_context's concurrency hint: with one thread Asio skips
  // cross-thread wake-ups, and sessions need no strand (everything runs on that thread).
  const unsigned thread_count = resolve_threads(options.threads);
  asio::io_context ioc{static_cast<int>(thread_count)};
  tcp::acceptor acceptor{asio::make_strand(ioc)};
  // every(): the periodic call and its timer (on the io_context, so after it in this list).
  std::function<void()> tick;
  std::chrono::microseconds tick_period{0};
  std::optional<asio::steady_timer> ticker;

  static unsigned resolve_threads(unsigned requested) noexcept {
    const unsigned n = requested != 0 ? requested : std::thread::hardware_concurrency();
    return n != 0 ? n : 1;
  }
  asio::any_io_executor session_executor() {
    if (thread_count == 1) return ioc.get_executor();
    return asio::make_strand(ioc);
  }

  result<tcp::endpoint> listen(listen_socket socket);
  void start();
  void stop();
  void schedule_tick();

  asio::awaitable<void> accept_loop();
  void spawn_session(tcp::socket socket);
  void refuse(tcp::socket socket);
  void log_refusal();
  asio::awaitable<void> answer_refusal(std::shared_ptr<connection> conn);
  void task_finished(std::uint64_t id, std::exception_ptr error, const char* what);
  std::vector<std::shared_ptr<connection>> snapshot();

  asio::awaitable<void> run_session(std::shared_ptr<connection> conn);
  asio::awaitable<next_step> serve_one(connection& conn, beast::flat_buffer& buffer);
  head_verdict check_head(connection& conn, const beast::error_code& ec);
  const handler* route(connection& conn);
  void refuse_body(connection& conn, const beast::error_code& ec);
  void dispatch_failed(connection& conn, const std::string& failure);
  asio::awaitable<next_step> respond(connection& conn);
  asio::awaitable<void> linger_close(connection& conn);
};

server::impl::~impl() {
  // Connections hold sockets of `ioc`; drop the registry's references before it goes.
  std::lock_guard lock(mutex);
  connections.clear();
}

result<tcp::endpoint> server::impl::listen(listen_socket socket) {
  const auto endpoint = socket.local_endpoint();
  const int fd = socket.release();
  beast::error_code ec;
  acceptor.assign(endpoint.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    std::ostringstream where;
    where << endpoint;
    return make_problem(error_kind::internal,
                        "cannot listen on " + where.str() + ": " + ec.message());
  }
  return endpoint;
}

void server::impl::start() {
  std::lock_guard life(lifecycle_mutex);
  if (is_started || is_stopped) return;
  is_started = true;
  {
    std::lock_guard lock(mutex);
    ++tasks;
  }
  asio::co_spawn(acceptor.get_executor(), accept_loop(), [this](std::exception_ptr e) {
    task_finished(std::numeric_limits<std::uint64_t>::max(), e, "accept_loop");
  });
  if (tick) {
    ticker.emplace(ioc);
    asio::post(ioc, [this] {
      tick();
      schedule_tick();
    });
  }
  const auto n = thread_count;
  threads.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    threads.emplace_back([this] {
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          // Only a completion handler can throw here (co_spawn catches coroutine exceptions);
          // log it and keep the thread serving.
          log_line({{"level", "error"}, {"event", "io_thread_exception"}, {"error", e.what()}});
        }
      }
    });
  }
}

// The next every() call. The timer is not a task: stop() ends it with the io_context.
void server::impl::schedule_tick() {
  ticker->expires_after(tick_period);
  ticker->async_wait([this](const beast::error_code& ec) {
    if (ec) return;
    tick();
    schedule_tick();
  });
}

std::vector<std::shared_ptr<connection>> server::impl::snapshot() {
  std::lock_guard lock(mutex);
  std::vector<std::shared_ptr<connection>> out;
  out.reserve(connections.size());
  for (const auto& [id, conn] : connections) out.push_back(conn);
  return out;
}

void server::impl::stop() {
  std::lock_guard life(lifecycle_mutex);
  if (is_stopped) return;
  is_stopped = true;
  draining.store(true);
  if (!is_started) {
    beast::error_code ignored;
    acceptor.close(ignored);
    return;
  }

  asio::post(acceptor.get_executor(), [this] {
    beast::error_code ignored;
    acceptor.close(ignored);
  });
  // Sessions waiting for a next request end now; busy ones notice `draining` after answering.
  for (auto& conn : snapshot()) {
    asio::post(conn->socket.get_executor(), [conn] {
      if (conn->idle) {
        beast::error_code ignored;
        conn->socket.cancel(ignored);
      }
    });
  }

  std::unique_lock lock(mutex);
  if (!tasks_done.wait_for(lock, options.drain_timeout, [this] { return tasks == 0; })) {
    lock.unlock();
    for (auto& conn : snapshot()) {
      asio::post(conn->socket.get_executor(), [conn] { conn->close(); });
    }
    lock.lock();
    tasks_done.wait_for(lock, kHardCloseGrace, [this] { return tasks == 0; });
  }
  lock.unlock();

  ioc.stop();
  for (auto& t : threads) t.join();
  threads.clear();
}

void server::impl::task_finished(std::uint64_t id, std::exception_ptr error, const char* what) {
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_line(
          {{"level", "error"}, {"event", "task_exception"}, {"task", what}, {"error", e.what()}});
    } catch (...) {
      log_line({{"level", "error"}, {"event", "task_exception"}, {"task", what}});
    }
  }
  std::shared_ptr<connection> last;  // released outside the lock
  {
    std::lock_guard lock(mutex);
    if (const auto it = connections.find(id); it != connections.end()) {
      last = std::move(it->second);
      connections.erase(it);
      if (last->refused) {
        refusing.fetch_sub(1);
      } else {
        open.fetch_sub(1);
        shared.stats.connection_closed();
      }
    }
    --tasks;
  }
  tasks_done.notify_all();
}

asio::awaitable<void> server::impl::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(session_executor(), use_tuple);
    if (ec) {
      if (draining.load() || ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      log_line({{"level", "warn"}, {"event", "accept_failed"}, {"error", ec.message()}});
      asio::steady_timer backoff(acceptor.get_executor(), kAcceptBackoff);
      co_await backoff.async_wait(use_tuple);
      continue;
    }
    // Only this loop adds to `open`, so the count cannot pass the limit between check and add.
    if (open.load() >= options.max_connections) {
      refuse(tcp::socket(std::move(socket)));
    } else {
      spawn_session(tcp::socket(std::move(socket)));
    }
  }
}

void server::impl::refuse(tcp::socket socket) {
  shared.stats.connection_refused();
  log_refusal();
  if (refusing.load() >= kMaxRefusing) {
    beast::error_code ignored;
    socket.close(ignored);
    return;
  }
  auto conn = std::make_shared<connection>(std::move(socket));
  conn->refused = true;
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mutex);
    id = next_id++;
    connections.emplace(id, conn);
    ++tasks;
  }
  refusing.fetch_add(1);
  auto executor = conn->socket.get_executor();
  asio::co_spawn(executor, answer_refusal(std::move(conn)),
                 [this, id](std::exception_ptr e) { task_finished(id, e, "refusal"); });
}

void server::impl::log_refusal() {
  ++refused_since_log;
  const auto now = std::chrono::steady_clock::now();
  if (last_refusal_log != std::chrono::steady_clock::time_point{} &&
      now - last_refusal_log < kRefusalLogInterval) {
    return;
  }
  log_line({{"level", "warn"},
            {"event", "connections_refused"},
            {"refused", refused_since_log},  // since the previous connections_refused line
            {"maxConnections", options.max_connections},
            {"detail", "at the connection limit: new connections get a 503 and are closed"}});
  refused_since_log = 0;
  last_refusal_log = now;
}

// The 503 goes out before any request is read; the client's request, if it sent one, is read and
// discarded while lingering, so that closing does not reset the connection under the answer.
asio::awaitable<void> server::impl::answer_refusal(std::shared_ptr<connection> conn) {
  generate_request_id(conn->request_id);
  conn->x.res = problem_response(transport_error::connection_limit,
                                 "The server is at its connection limit (" +
                                     std::to_string(options.max_connections) +
                                     " open connections); try again later.",
                                 conn->request_id);
  render_head(conn->x.res, 11, false, conn->request_id, conn->head);
  const std::array<asio::const_buffer, 2> bytes{asio::buffer(conn->head),
                                                asio::buffer(conn->x.res.body())};
  conn->expires_after(options.header_timeout);
  const auto [ec, n] = co_await asio::async_write(conn->socket, bytes, use_tuple);
  conn->operation_done();
  if (!ec) co_await linger_close(*conn);
  conn->close();
}

void server::impl::spawn_session(tcp::socket socket) {
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // responses go out in one write each
  auto conn = std::make_shared<connection>(std::move(socket));
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mutex);
    id = next_id++;
    connections.emplace(id, conn);
    ++tasks;
  }
  open.fetch_add(1);
  shared.stats.connection_opened();
  auto executor = conn->socket.get_executor();
  asio::co_spawn(executor, run_session(std::move(conn)),
                 [this, id](std::exception_ptr e) { task_finished(id, e, "session"); });
}

asio::awaitable<void> server::impl::run_session(std::shared_ptr<connection> conn) {
  beast::flat_buffer buffer;
  bool first = true;
  auto step = next_step::close_now;
  for (;;) {
    if (draining.load() && !first) {
      // Stopping, with nothing of a next request read: close without a reset (a request the
      // client sends meanwhile is discarded by the linger, never answered by an RST).
      step = next_step::close_graceful;
      break;
    }
    if (buffer.size() == 0) {
      // Waiting for a request that has not begun: this is the state stop() may cancel at once,
      // except on a new connection. Its client has a request on the way, and a client retries a
      // request that met a closed connection only on a reused one: the first request is awaited
      // (within header_timeout and the drain) and answered with Connection: close.
      conn->idle = !first;
      conn->expires_after(first ? options.header_timeout : options.idle_timeout);
      auto [ec, n] =
          co_await conn->socket.async_read_some(buffer.prepare(kFirstReadBytes), use_tuple);
      conn->operation_done();
      conn->idle = false;
      if (ec == asio::error::operation_aborted && draining.load() && conn->socket.is_open()) {
        // stop() cancelled the wait. A request that reached the socket in the meantime is still
        // answered (with Connection: close); otherwise the connection is shut down cleanly, so
        // that a client that reuses it sees the end of a connection, not a reset
        // (docs/operations.md, "Signals and shutdown").
        beast::error_code aec;
        if (conn->socket.available(aec) > 0 && !aec) {
          conn->expires_after(options.header_timeout);
          auto [rec, rn] =
              co_await conn->socket.async_read_some(buffer.prepare(kFirstReadBytes), use_tuple);
          conn->operation_done();
          if (!rec && rn > 0) {
            buffer.commit(rn);
            step = co_await serve_one(*conn, buffer);
            if (step == next_step::read_next) step = next_step::close_graceful;
            break;
          }
        }
        step = next_step::close_graceful;
        break;
      }
      if (ec) break;
      buffer.commit(n);
    }
    first = false;
    step = co_await serve_one(*conn, buffer);
    if (step != next_step::read_next) break;
  }
  if (step == next_step::close_graceful) co_await linger_close(*conn);
  conn->close();
}

asio::awaitable<void> server::impl::linger_close(connection& conn) {
  beast::error_code ec;
  conn.socket.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  conn.idle = true;                    // nothing left to answer: stop() may cut this short
  conn.expires_after(kLingerTimeout);  // for all of the lingering, not per read
  std::array<char, 4096> sink;
  std::size_t discarded = 0;
  while (discarded < kLingerMaxBytes) {
    auto [rec, n] = co_await conn.socket.async_read_some(asio::buffer(sink), use_tuple);
    if (rec) break;
    discarded += n;
  }
}

asio::awaitable<next_step> server::impl::serve_one(connection& conn, beast::flat_buffer& buffer) {
  auto& parser = conn.parser.emplace();
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(options.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  // The body limit is decided from Content-Length below, with the whole head in hand.
  parser.body_limit(boost::none);

  conn.expires_after(options.header_timeout);
  const auto [ec, n] = co_await bhttp::async_read_header(conn.socket, buffer, parser, use_tuple);
  conn.operation_done();
  const auto verdict = check_head(conn, ec);
  if (verdict == head_verdict::close_now) co_return next_step::close_now;
  if (verdict == head_verdict::answer) co_return co_await respond(conn);

  if (verdict == head_verdict::read_body) {
    const auto& head = parser.get();
    if (head.version() >= 11 && beast::iequals(head[bhttp::field::expect], "100-continue")) {
      conn.expires_after(options.header_timeout);
      const auto [wec, wn] =
          co_await asio::async_write(conn.socket, asio::buffer(kContinue), use_tuple);
      conn.operation_done();
      if (wec) co_return next_step::close_now;
    }
    parser.body_limit(options.max_body_bytes);  // bounds chunked bodies too
    conn.expires_after(options.header_timeout);
    const auto [bec, bn] = co_await bhttp::async_read(conn.socket, buffer, parser, use_tuple);
    conn.operation_done();
    if (bec) {
      if (bec != bhttp::error::body_limit && !is_malformed(bec)) co_return next_step::close_now;
      refuse_body(conn, bec);
      co_return co_await respond(conn);
    }
  }

  if (const handler* target = route(conn)) {
    std::string failure;
    try {
      conn.x.res = co_await (*target)(*conn.context);
    } catch (const std::exception& e) {
      failure = e.what();
      if (failure.empty()) failure = "exception";
    } catch (...) {
      failure = "unknown exception";
    }
    if (!failure.empty()) dispatch_failed(conn, failure);
  }
  co_return co_await respond(conn);
}

// Reads the request head's outcome into the connection's exchange. Everything decided from the
// head alone is answered without reading a body, and those answers end the connection.
head_verdict server::impl::check_head(connection& conn, const beast::error_code& ec) {
  auto& x = conn.x;
  const auto& head = conn.parser->get();
  x.started = std::chrono::steady_clock::now();
  x.version = 11;
  x.head = false;
  x.keep_alive = false;
  x.route = {};
  if (ec == bhttp::error::header_limit) {
    x.request_id = pick_request_id(head, conn.request_id);
    x.res = problem_response(
        transport_error::headers_too_large,
        "The request head exceeds " + std::to_string(options.max_header_bytes) + " bytes.",
        x.request_id);
    return head_verdict::answer;
  }
  if (ec) {
    if (!is_malformed(ec)) return head_verdict::close_now;
    x.request_id = pick_request_id(head, conn.request_id);
    x.res = problem_response(transport_error::malformed_request, ec.message() + ".", x.request_id);
    return head_verdict::answer;
  }

  x.request_id = pick_request_id(head, conn.request_id);
  x.version = head.version();
  x.head = head.method() == bhttp::verb::head;

  // Message framing (RFC 9112 §6.1): a request with Transfer-Encoding must end in chunked and
  // must not also carry Content-Length; anything else is how requests get smuggled.
  if (head.count(bhttp::field::transfer_encoding) != 0 &&
      (head.count(bhttp::field::content_length) != 0 || !conn.parser->chunked())) {
    x.res = problem_response(transport_error::malformed_request,
                             head.count(bhttp::field::content_length) != 0
                                 ? "The request has both Transfer-Encoding and Content-Length."
                                 : "The request's Transfer-Encoding does not end in chunked.",
                             x.request_id);
    return head_verdict::answer;
  }

  // RFC 9112 §3.2: an HTTP/1.1 request without a Host header, and any request with more than
  // one, is answered 400 (docs/openapi.yaml, "Conventions").
  if (const std::size_t hosts = head.count(bhttp::field::host);
      hosts > 1 || (hosts == 0 && head.version() >= 11)) {
    x.res = problem_response(transport_error::malformed_request,
                             hosts == 0 ? "An HTTP/1.1 request must carry a Host header."
                                        : "The request carries more than one Host header.",
                             x.request_id);
    return head_verdict::answer;
  }

  if (const auto length = conn.parser->content_length();
      length && *length > options.max_body_bytes) {
    // Decided from the head alone: the body is never read.
    x.route = routes.find(head.method(), split_target(head.target()).first).route;
    x.res = problem_response(
        make_problem(error_kind::payload_too_large,
                     "The request body is " + std::to_string(*length) + " bytes; the limit is " +
                         std::to_string(options.max_body_bytes) + " bytes."),
        x.request_id);
    return head_verdict::answer;
  }
  return conn.parser->is_done() ? head_verdict::handle : head_verdict::read_body;
}

// A body over the limit (413) or one that does not parse (400).
void server::impl::refuse_body(connection& conn, const beast::error_code& ec) {
  if (ec == bhttp::error::body_limit) {
    conn.x.res =
        problem_response(make_problem(error_kind::payload_too_large,
                                      "The request body exceeds " +
                                          std::to_string(options.max_body_bytes) + " bytes."),
                         conn.x.request_id);
  } else {
    conn.x.res =
        problem_response(transport_error::malformed_request, ec.message() + ".", conn.x.request_id);
  }
}

// The handler for the request, with its context in the connection; or nullptr when the request
// is already answered in the exchange (no such route: 404; another method: 405 with Allow).
const handler* server::impl::route(connection& conn) {
  const request& req = conn.parser->get();
  conn.x.keep_alive = req.keep_alive();
  const auto [path, query] = split_target(req.target());
  auto match = routes.find(req.method(), path);
  conn.x.route = match.route;
  switch (match.outcome) {
    case router::match::kind::not_found:
      conn.x.res = problem_response(
          make_problem(error_kind::not_found, "No route matches " + std::string(path) + "."),
          conn.x.request_id);
      return nullptr;
    case router::match::kind::method_not_allowed:
      conn.x.res =
          problem_response(transport_error::method_not_allowed,
                           std::string(bhttp::to_string(req.method())) + " is not allowed on " +
                               std::string(path) + "; allowed: " + match.allow + ".",
                           conn.x.request_id);
      conn.x.res.set(bhttp::field::allow, match.allow);
      return nullptr;
    case router::match::kind::found:
      break;
  }
  conn.context.emplace(request_context{req, match.params, path, query, conn.x.request_id});
  return match.target;
}

void server::impl::dispatch_failed(connection& conn, const std::string& failure) {
  log_line({{"level", "error"},
            {"event", "handler_exception"},
            {"method", bhttp::to_string(conn.parser->get().method())},
            {"route", conn.x.route},
            {"requestId", conn.x.request_id},
            {"error", failure}});
  conn.x.res = problem_response(
      make_problem(error_kind::internal, "The server failed to handle the request."),
      conn.x.request_id);
}

asio::awaitable<next_step> server::impl::respond(connection& conn) {
  auto& x = conn.x;
  // While draining, the request in flight is the connection's last.
  const bool keep = x.keep_alive && !draining.load();
  try {
    render_head(x.res, x.version, keep, x.request_id, conn.head);
  } catch (const std::exception& e) {
    // A body on 1xx/204/304: a handler bug, answered as one.
    log_line({{"level", "error"},
              {"event", "invalid_response"},
              {"route", x.route},
              {"requestId", x.request_id},
              {"error", e.what()}});
    x.res = problem_response(
        make_problem(error_kind::internal, "The server built an invalid response."), x.request_id);
    render_head(x.res, x.version, keep, x.request_id, conn.head);
  }

  // A response to HEAD carries the headers of the GET it mirrors, never the body.
  const std::array<asio::const_buffer, 2> bytes{
      asio::buffer(conn.head), x.head ? asio::const_buffer() : asio::buffer(x.res.body())};
  conn.expires_after(options.header_timeout);
  const auto [ec, n] = co_await asio::async_write(conn.socket, bytes, use_tuple);
  conn.operation_done();
  shared.stats.record_request(x.route, x.res.result_int(),
                              std::chrono::steady_clock::now() - x.started);
  // An idle connection keeps neither the request nor the answer.
  x.res = response{};
  conn.context.reset();
  conn.parser.reset();
  if (ec) co_return next_step::close_now;
  co_return keep ? next_step::read_next : next_step::close_graceful;
}

// ---- server

server::server(server_options options, const router& routes, app& shared)
    : impl_(std::make_unique<impl>(std::move(options), routes, shared)) {}

server::~server() {
  stop();
}

result<asio::ip::tcp::endpoint> server::listen() {
  auto socket = listen_socket::bind(impl_->options.host, impl_->options.port);
  if (!socket) return socket.error();
  return impl_->listen(std::move(*socket));
}
result<asio::ip::tcp::endpoint> server::listen(listen_socket socket) {
  return impl_->listen(std::move(socket));
}
void server::every(std::chrono::microseconds period, std::function<void()> tick) {
  impl_->tick_period = period;
  impl_->tick = std::move(tick);
}
void server::start() {
  impl_->start();
}
void server::stop() {
  impl_->stop();
}
std::size_t server::open_connections() const noexcept {
  return impl_->open.load();
}

}  // namespace hookd::http
