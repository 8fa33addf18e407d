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
// Idle connections: what a request needs (the parser, the response, the request id: `exchange`)
// is allocated when it begins and freed once it is answered. When nothing of a next request has
// arrived, the connection is parked (park): the session coroutine ends, its frames and the
// read buffer are given back, and only a readiness wait with a small handler remains, which
// starts the coroutine again when bytes arrive. An idle keep-alive connection then costs its
// socket, its timer and the connection object (docs/operations.md, "Limits that protect tenants
// from each other"). A TLS connection (tls_socket: OpenSSL on the socket itself, its record
// buffers given back while empty) is parked the same way unless OpenSSL holds bytes of a next
// request already, which no readiness wait would announce; it then reads them at once.
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
//
// TLS (options.tls): the same session over a session_stream that wraps the socket in TLS. The
// handshake runs under header_timeout. A client whose first byte is not a TLS handshake record
// spoke plain HTTP to the HTTPS port: it gets a plain 400 saying so, then the connection closes.
// A closing TLS connection sends close_notify first, then lingers like a plain one.
//
// Request heads (RFC 9112; docs/operations.md lists the checks): the session reads until the
// head's blank line itself and looks at the raw bytes before Beast parses them, for what the
// parser lets through or cannot tell apart: obsolete line folding (Beast unfolds it silently)
// and a request-target too long (414, where the parser would only see a head too large, 431).

#include "http/server/server.hpp"

#include "core/common/crypto.hpp"
#include "core/common/log.hpp"
#include "core/common/thread_name.hpp"
#include "http/api/app.hpp"
#include "http/api/auth.hpp"
#include "http/api/token_digest_cache.hpp"
#include "http/server/metrics.hpp"
#include "http/server/problem.hpp"
#include "http/server/rate_limiter.hpp"
#include "http/server/session_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
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
#include <boost/url/parse.hpp>

#include <unistd.h>

#include <array>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <thread>
#include <tuple>
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
// How much a session reads while waiting for the first byte of a request, and at most per read of
// a head. The first read's buffer is freed and allocated again around every idle wait: at 1 KiB
// (most request heads fit) it comes from the allocator's per-thread cache, where 4 KiB took a
// trip through its bins each time.
constexpr std::size_t kFirstReadBytes = 1024;
constexpr std::size_t kHeadReadBytes = 4096;
// What a response head's buffer starts with: one allocation for most heads.
constexpr std::size_t kResponseHeadBytes = 512;
// Back-off after an accept error that is not ours (EMFILE, ENFILE, ENOBUFS), so it cannot spin.
constexpr std::chrono::milliseconds kAcceptBackoff{50};
// Connections being answered 503 at the limit at once (each lingers up to kLingerTimeout); past
// this a connection beyond the limit is closed unanswered, so a flood cannot pile up descriptors.
constexpr std::size_t kMaxRefusing = 64;
// At most one connections_refused log line per this interval.
constexpr std::chrono::seconds kRefusalLogInterval{10};
// The first byte of a TLS connection: a handshake record (RFC 8446 §5.1, content type 22).
constexpr unsigned char kTlsHandshakeRecord = 0x16;
// The most of X-Forwarded-For an access log line carries.
constexpr std::size_t kMaxForwardedForBytes = 512;

// Request ids: 16 random bytes as 32 hex digits. A per-thread xoshiro256** seeded once from
// RAND_bytes is enough: ids must be unique, not secret. Written into `id`.
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

// The request's id into `storage`: the client's X-Request-Id when valid, else a new one.
void pick_request_id(const bhttp::fields& f, std::string& storage) {
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

// A handler whose pending operation is allocated at its own size. Without this, Asio takes the
// memory of an operation from its per-thread recycling cache (std::allocator, the default, means
// that cache to Asio), whose blocks were sized for the largest operations a request runs (~330
// bytes): fine for what completes within a request, but the two waits an idle connection keeps
// pending (the watchdog's, park's) would each hold one for as long as the connection idles.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}  // NOLINT: rebinding converts
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  friend bool operator==(exact_allocator, exact_allocator) noexcept { return true; }
};
template <class Handler>
auto with_own_memory(Handler&& handler) {
  return asio::bind_allocator(exact_allocator<void>(), std::forward<Handler>(handler));
}

// A connection as the registry sees it. Everything but construction runs on the session's
// executor (its strand, or the one I/O thread).
struct connection : std::enable_shared_from_this<connection> {
  using clock = std::chrono::steady_clock;
  static constexpr auto kNoDeadline = clock::time_point::max();

  // `timers` runs the watchdog; `on_strand`: the session's executor is a strand, which the
  // watchdog's handler is then bound to.
  connection(session_stream s, asio::io_context::executor_type timers, bool on_strand)
      : stream(std::move(s)), on_strand_(on_strand), watchdog(timers) {}

  // The members are ordered by size, so that an idle connection takes as few bytes as it can.
  session_stream stream;
  tcp::socket& socket() noexcept { return stream.socket(); }
  std::uint64_t id = 0;  // in the registry
  // The peer, for the access log (null without it): its address as text.
  std::unique_ptr<const std::string> peer;
  // What the connection still holds between requests: the bytes of a request sent ahead
  // (pipelining); empty (no memory) while the connection waits for a next request.
  beast::flat_buffer buffer;

  // One request from its first byte to its response, and what it is answered with. It is
  // allocated when a request begins and freed once the response is written, so that an idle
  // keep-alive connection holds none of it. It lives here
  // rather than in serve_one's coroutine frame: Asio recycles frames of up to 1020 bytes per
  // thread, and with a parser inside, the frame was ~3.8 KB, so each request paid an aligned
  // malloc and free for it (and evicted the recycled blocks of the smaller frames, which then
  // paid too).
  struct exchange {
    std::string head;        // the response head being written
    std::string request_id;  // the request's id, echoed or generated
    std::optional<bhttp::request_parser<bhttp::string_body>> parser;
    std::optional<request_context> context;  // what the handler is given
    response res;
    unsigned version = 11;
    bool head_only = false;  // answering HEAD: the headers of the GET, no body
    bool keep_alive = false;
    std::string_view route;  // the metrics label; in the router
    std::chrono::steady_clock::time_point started;
    std::size_t bytes_in = 0;  // the request's head and body as received
  };
  std::unique_ptr<exchange> ex;
  bool idle = false;          // waiting for a next request (or parked): stop() may cancel the wait
  bool refused = false;       // answered 503 at the connection limit; not an open session
  bool tls_up = false;        // the TLS handshake completed: closing sends close_notify
  bool peer_trusted = false;  // the peer is a trusted proxy (its X-Forwarded-For is logged)

  // The exchange of the request beginning now.
  exchange& begin_exchange() {
    if (!ex) {
      ex = std::make_unique<exchange>();
      ex->head.reserve(kResponseHeadBytes);
    }
    return *ex;
  }

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
    socket().close(ignored);
  }

 private:
  // Waits until `at`. A wait already pending is cancelled (its handler then does nothing).
  void arm(clock::time_point at) {
    armed_ = at;
    watchdog.expires_at(at);
    auto done = with_own_memory([self = shared_from_this()](const beast::error_code& ec) {
      if (!ec) self->on_watchdog();
    });
    if (on_strand_) {
      watchdog.async_wait(asio::bind_executor(stream.get_executor(), std::move(done)));
    } else {
      watchdog.async_wait(std::move(done));
    }
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

  bool closed_ = false;
  bool on_strand_ = false;
  // On the io_context's own executor (8 bytes, where a steady_timer carries a 48-byte
  // any_io_executor), with the handler bound to the strand when there is one.
  asio::basic_waitable_timer<clock, asio::wait_traits<clock>, asio::io_context::executor_type>
      watchdog;
  clock::time_point deadline_ = kNoDeadline;
  clock::time_point armed_ = kNoDeadline;  // what the watchdog waits for; max: no wait pending
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
  std::unique_ptr<rate_limiter> limiter = options.rate_limit > 0
                                              ? std::make_unique<rate_limiter>(options.rate_limit)
                                              : nullptr;

  std::mutex tls_mutex;  // tls
  tls_context tls = options.tls;
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

  tls_context current_tls();
  std::shared_ptr<connection> make_connection(tcp::socket socket);
  asio::awaitable<bool> start_tls(connection& conn);
  asio::awaitable<void> answer_plain_http(connection& conn);

  void run(std::shared_ptr<connection> conn, std::optional<beast::error_code> woken);
  asio::awaitable<bool> run_session(std::shared_ptr<connection> conn,
                                    std::optional<beast::error_code> woken);
  void park(const std::shared_ptr<connection>& conn);
  asio::awaitable<next_step> serve_one(connection& conn, beast::flat_buffer& buffer);
  asio::awaitable<std::pair<beast::error_code, std::size_t>> read_head(connection& conn,
                                                                       beast::flat_buffer& buffer);
  bool check_raw_head(connection& conn, std::span<char> raw, const beast::error_code& ec);
  head_verdict check_head(connection& conn, const beast::error_code& ec);
  bool check_target(connection& conn);
  bool rate_limited(connection& conn);
  void log_access_line(connection& conn, std::size_t bytes_out);
  const handler* route(connection& conn);
  void refuse_body(connection& conn, const beast::error_code& ec);
  void dispatch_failed(connection& conn, const std::string& failure);
  asio::awaitable<next_step> respond(connection& conn);
  asio::awaitable<void> linger_close(connection& conn);
  asio::awaitable<std::pair<beast::error_code, std::size_t>> read_first(connection& conn);
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
    threads.emplace_back([this, i] {
      set_thread_name("http-" + std::to_string(i));
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
    asio::post(conn->stream.get_executor(), [conn] {
      if (conn->idle) {
        beast::error_code ignored;
        conn->socket().cancel(ignored);
      }
    });
  }

  std::unique_lock lock(mutex);
  if (!tasks_done.wait_for(lock, options.drain_timeout, [this] { return tasks == 0; })) {
    lock.unlock();
    for (auto& conn : snapshot()) {
      asio::post(conn->stream.get_executor(), [conn] { conn->close(); });
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
  auto conn = make_connection(std::move(socket));
  conn->refused = true;
  std::uint64_t id = 0;
  {
    std::lock_guard lock(mutex);
    id = next_id++;
    connections.emplace(id, conn);
    ++tasks;
  }
  refusing.fetch_add(1);
  auto executor = conn->stream.get_executor();
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
  if (conn->stream.is_tls() && !co_await start_tls(*conn)) {
    conn->close();
    co_return;
  }
  conn->begin_exchange();
  generate_request_id(conn->ex->request_id);
  conn->ex->res = problem_response(transport_error::connection_limit,
                                   "The server is at its connection limit (" +
                                       std::to_string(options.max_connections) +
                                       " open connections); try again later.",
                                   conn->ex->request_id);
  render_head(conn->ex->res, 11, false, conn->ex->request_id, conn->ex->head);
  conn->ex->head += conn->ex->res.body();  // one write: under TLS, one record
  conn->expires_after(options.header_timeout);
  const auto [ec, n] =
      co_await asio::async_write(conn->stream, asio::buffer(conn->ex->head), use_tuple);
  conn->operation_done();
  if (!ec) co_await linger_close(*conn);
  conn->close();
}

tls_context server::impl::current_tls() {
  std::lock_guard lock(tls_mutex);
  return tls;
}

// The connection over `socket`: under TLS with the context of the moment; the peer's address
// when the access log needs it.
std::shared_ptr<connection> server::impl::make_connection(tcp::socket socket) {
  std::string peer;
  bool trusted = false;
  if (options.access_log) {
    beast::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (!ec) {
      const auto address = remote.address();
      peer = address.to_string();
      if (!options.trusted_proxies.empty()) {
        const auto bytes = address.is_v4() ? ip_address::from_bytes(address.to_v4().to_bytes())
                                           : ip_address::from_bytes(address.to_v6().to_bytes());
        trusted = bytes && contains_any(options.trusted_proxies, *bytes);
      }
    }
  }
  auto context = current_tls();
  auto conn = std::make_shared<connection>(
      context ? session_stream(std::move(socket), context) : session_stream(std::move(socket)),
      ioc.get_executor(), thread_count > 1);
  if (options.access_log) conn->peer = std::make_unique<const std::string>(std::move(peer));
  conn->peer_trusted = trusted;
  return conn;
}

void server::impl::spawn_session(tcp::socket socket) {
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);  // responses go out in one write each
  auto conn = make_connection(std::move(socket));
  // A session reads the bytes a readiness wait announced without blocking (read_first, park);
  // under TLS, tls_socket has made its socket non-blocking already.
  if (!conn->stream.is_tls()) conn->socket().non_blocking(true, ignored);
  {
    std::lock_guard lock(mutex);
    conn->id = next_id++;
    connections.emplace(conn->id, conn);
    ++tasks;
  }
  open.fetch_add(1);
  shared.stats.connection_opened();
  run(std::move(conn), std::nullopt);
}

// Runs the session coroutine: from the start, or `woken` from park(). It ends the session's task
// unless the coroutine parked the connection again.
void server::impl::run(std::shared_ptr<connection> conn, std::optional<beast::error_code> woken) {
  const auto id = conn->id;
  auto executor = conn->stream.get_executor();
  asio::co_spawn(executor, run_session(std::move(conn), woken),
                 [this, id](std::exception_ptr e, bool parked) {
                   if (!e && parked) return;
                   task_finished(id, e, "session");
                 });
}

// An idle connection between requests: no coroutine waits for its next request, only a
// readiness wait with a small handler, which starts the session coroutine again (run). The
// coroutine's frames, its read buffer and the request's state are all given back meanwhile;
// stop() cancels the wait like any idle wait.
void server::impl::park(const std::shared_ptr<connection>& conn) {
  conn->buffer.shrink_to_fit();  // empty: frees the memory
  conn->idle = true;
  conn->expires_after(options.idle_timeout);
  conn->socket().async_wait(
      tcp::socket::wait_read,
      with_own_memory([this, conn](const beast::error_code& ec) { run(conn, ec); }));
}

// Waits for the client's first byte (an idle wait that stop() may cancel), then: a TLS handshake
// record starts the handshake; anything else is plain HTTP sent to the HTTPS port, answered with
// a 400 in plain HTTP. True when TLS is up.
asio::awaitable<bool> server::impl::start_tls(connection& conn) {
  conn.idle = true;
  conn.expires_after(options.header_timeout);  // for the first byte, however many wake-ups
  unsigned char first = 0;
  std::size_t peeked = 0;
  beast::error_code ec;
  for (;;) {
    std::tie(ec) = co_await conn.socket().async_wait(tcp::socket::wait_read, use_tuple);
    if (ec || draining.load()) break;
    peeked = conn.socket().receive(asio::buffer(&first, 1), tcp::socket::message_peek, ec);
    // A readiness wait can end with nothing to read yet (seen with several I/O threads, on a
    // descriptor number just freed by a connection its client reset). Closing then would drop a
    // client whose ClientHello is on its way: its handshake would end unanswered (end of stream,
    // or a reset once the ClientHello meets the closed socket). So wait again, within the same
    // deadline.
    if (ec != asio::error::would_block && ec != asio::error::try_again) break;
  }
  conn.operation_done();
  conn.idle = false;
  if (ec || draining.load() || peeked == 0) co_return false;
  if (first != kTlsHandshakeRecord) {
    co_await answer_plain_http(conn);
    co_return false;
  }
  conn.expires_after(options.header_timeout);
  const auto [hec] =
      co_await conn.stream.tls().async_handshake(asio::ssl::stream_base::server, use_tuple);
  conn.operation_done();
  if (hec) {
    // Scanners and clients that distrust the certificate end here: routine, so debug only.
    if (log_enabled(log_level::debug)) {
      beast::error_code rec;
      const auto remote = conn.socket().remote_endpoint(rec);
      log_line({{"level", "debug"},
                {"event", "tls_handshake_failed"},
                {"peer", rec ? std::string() : remote.address().to_string()},
                {"error", hec.message()}});
    }
    co_return false;
  }
  conn.tls_up = true;
  co_return true;
}

asio::awaitable<void> server::impl::answer_plain_http(connection& conn) {
  conn.begin_exchange();
  generate_request_id(conn.ex->request_id);
  conn.ex->res = problem_response(transport_error::malformed_request,
                                  "This port serves HTTPS, and the request came as plain HTTP: use "
                                  "an https:// URL.",
                                  conn.ex->request_id);
  render_head(conn.ex->res, 11, false, conn.ex->request_id, conn.ex->head);
  conn.ex->head += conn.ex->res.body();
  conn.expires_after(options.header_timeout);
  const auto [ec, n] =
      co_await asio::async_write(conn.socket(), asio::buffer(conn.ex->head), use_tuple);
  conn.operation_done();
  if (!ec) co_await linger_close(conn);
}

// The session of one connection: its requests, one after another. True when it parked the
// connection (park) rather than wait for the next request itself; `woken` is then the outcome of
// that wait when run() starts it again.
asio::awaitable<bool> server::impl::run_session(std::shared_ptr<connection> conn,
                                                std::optional<beast::error_code> woken) {
  auto& buffer = conn->buffer;
  bool first = !woken;  // a woken session has served requests on this connection already
  auto step = next_step::close_now;
  if (first && conn->stream.is_tls() && !co_await start_tls(*conn)) {
    conn->close();
    co_return false;
  }
  for (;;) {
    if (draining.load() && !first && !woken) {
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
      beast::error_code ec;
      std::size_t n = 0;
      if (woken) {
        // park()'s wait ended: read what came without blocking, or go on with its error.
        ec = *woken;
        woken.reset();
        conn->operation_done();
        conn->idle = false;
        if (!ec && conn->stream.is_tls()) {
          // A record, or part of one, arrived: TLS reads it (and waits for the rest).
          conn->expires_after(options.header_timeout);
          std::tie(ec, n) =
              co_await conn->stream.async_read_some(buffer.prepare(kFirstReadBytes), use_tuple);
          conn->operation_done();
        } else if (!ec) {
          n = conn->socket().read_some(buffer.prepare(kFirstReadBytes), ec);
          if (ec == asio::error::would_block || ec == asio::error::try_again) {
            if (draining.load()) {
              step = next_step::close_graceful;
              break;
            }
            park(conn);  // woken without data after all
            co_return true;
          }
        }
      } else if (!first && !conn->stream.has_pending()) {
        park(conn);
        co_return true;
      } else {
        conn->idle = !first;
        conn->expires_after(first ? options.header_timeout : options.idle_timeout);
        std::tie(ec, n) = co_await read_first(*conn);
        conn->operation_done();
        conn->idle = false;
      }
      if (ec == asio::error::operation_aborted && draining.load() && conn->socket().is_open()) {
        // stop() cancelled the wait. A request that reached the socket in the meantime is still
        // answered (with Connection: close); otherwise the connection is shut down cleanly, so
        // that a client that reuses it sees the end of a connection, not a reset
        // (docs/operations.md, "Signals and shutdown").
        beast::error_code aec;
        if (conn->socket().available(aec) > 0 && !aec) {
          conn->expires_after(options.header_timeout);
          auto [rec, rn] =
              co_await conn->stream.async_read_some(buffer.prepare(kFirstReadBytes), use_tuple);
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
  co_return false;
}

// The first bytes of a connection's first request (or, under TLS, of a request whose bytes TLS
// holds already) into its empty buffer. A plain connection waits for them without a buffer and
// reads what came without blocking; TLS reads through OpenSSL, which may hold them already.
asio::awaitable<std::pair<beast::error_code, std::size_t>> server::impl::read_first(
    connection& conn) {
  auto& buffer = conn.buffer;
  if (conn.stream.is_tls()) {
    const auto [ec, n] =
        co_await conn.stream.async_read_some(buffer.prepare(kFirstReadBytes), use_tuple);
    co_return std::pair{ec, n};
  }
  buffer.shrink_to_fit();  // empty: frees the memory
  for (;;) {
    const auto [wec] = co_await conn.socket().async_wait(tcp::socket::wait_read, use_tuple);
    if (wec) co_return std::pair{wec, 0};
    beast::error_code ec;
    const auto n = conn.socket().read_some(buffer.prepare(kFirstReadBytes), ec);
    if (ec != asio::error::would_block && ec != asio::error::try_again) {
      co_return std::pair{ec, n};
    }
  }
}

asio::awaitable<void> server::impl::linger_close(connection& conn) {
  conn.idle = true;                    // nothing left to answer: stop() may cut this short
  conn.expires_after(kLingerTimeout);  // for all of the lingering, not per read
  if (conn.tls_up) {
    // close_notify, so that the client knows the response was not cut; what the client still
    // sends (its own close_notify among it) is discarded below like plain bytes.
    conn.tls_up = false;
    co_await conn.stream.tls().async_shutdown(use_tuple);
    if (!conn.socket().is_open()) co_return;
  }
  beast::error_code ec;
  conn.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  std::array<char, 4096> sink;
  std::size_t discarded = 0;
  while (discarded < kLingerMaxBytes) {
    auto [rec, n] = co_await conn.socket().async_read_some(asio::buffer(sink), use_tuple);
    if (rec) break;
    discarded += n;
  }
}

asio::awaitable<next_step> server::impl::serve_one(connection& conn, beast::flat_buffer& buffer) {
  auto& parser = conn.begin_exchange().parser.emplace();
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(options.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  // The body limit is decided from Content-Length below, with the whole head in hand.
  parser.body_limit(boost::none);

  auto [ec, head_size] = co_await read_head(conn, buffer);
  conn.ex->bytes_in = head_size;
  std::span<char> raw(static_cast<char*>(buffer.data().data()), ec ? buffer.size() : head_size);
  if (check_raw_head(conn, raw, ec)) co_return co_await respond(conn);
  if (!ec) {
    // The whole head is in the buffer: the parser takes it in one call, and stops at its end.
    const auto used = parser.put(asio::buffer(buffer.data().data(), head_size), ec);
    buffer.consume(used);
    if (!ec && !parser.is_header_done()) ec = bhttp::error::partial_message;
  }
  const auto verdict = check_head(conn, ec);
  if (verdict == head_verdict::close_now) co_return next_step::close_now;
  if (verdict == head_verdict::answer) co_return co_await respond(conn);

  if (verdict == head_verdict::read_body) {
    const auto& head = parser.get();
    if (head.version() >= 11 && beast::iequals(head[bhttp::field::expect], "100-continue")) {
      conn.expires_after(options.header_timeout);
      const auto [wec, wn] =
          co_await asio::async_write(conn.stream, asio::buffer(kContinue), use_tuple);
      conn.operation_done();
      if (wec) co_return next_step::close_now;
    }
    parser.body_limit(options.max_body_bytes);  // bounds chunked bodies too
    conn.expires_after(options.header_timeout);
    const auto [bec, bn] = co_await bhttp::async_read(conn.stream, buffer, parser, use_tuple);
    conn.operation_done();
    conn.ex->bytes_in += bn;
    if (bec) {
      if (bec != bhttp::error::body_limit && !is_malformed(bec)) co_return next_step::close_now;
      refuse_body(conn, bec);
      co_return co_await respond(conn);
    }
  }

  if (limiter && rate_limited(conn)) co_return co_await respond(conn);
  if (const handler* target = route(conn)) {
    std::string failure;
    try {
      conn.ex->res = co_await (*target)(*conn.ex->context);
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

// Reads until `buffer` holds a whole request head, through the blank line that ends it; returns
// the head's size. bhttp::error::header_limit when no head ends within max_header_bytes; a read
// error (end of stream, timeout) as it came.
asio::awaitable<std::pair<beast::error_code, std::size_t>> server::impl::read_head(
    connection& conn, beast::flat_buffer& buffer) {
  std::size_t scanned = 0;  // bytes searched already, but for a blank line's first three
  for (;;) {
    const std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
    if (const auto end = data.find("\r\n\r\n", scanned); end != std::string_view::npos) {
      if (end + 4 > options.max_header_bytes) co_return std::pair{bhttp::error::header_limit, 0};
      co_return std::pair{beast::error_code{}, end + 4};
    }
    if (data.size() >= options.max_header_bytes) {
      co_return std::pair{bhttp::error::header_limit, 0};
    }
    scanned = data.size() >= 3 ? data.size() - 3 : 0;
    conn.expires_after(options.header_timeout);
    const auto [ec, n] = co_await conn.stream.async_read_some(
        buffer.prepare(std::min(kHeadReadBytes, options.max_header_bytes + 4 - data.size())),
        use_tuple);
    conn.operation_done();
    if (ec) co_return std::pair{ec, 0};
    buffer.commit(n);
  }
}

// What the raw bytes of a head (whole, or as far as read_head got) must be answered with before
// any parsing: a request-target over max_target_bytes (414), an HTTP version other than 1.x
// (505; Beast would call it malformed), and obsolete line folding or whitespace before the first
// field (400; RFC 9112 §5.2 and §2.2 allow rejecting them, and a folded line is how a field hides
// from one parser and not from another). A later HTTP/1.x minor version is rewritten to 1.1 in
// place, to be served as 1.1 (RFC 9110 §2.5). True when answered.
bool server::impl::check_raw_head(connection& conn, std::span<char> raw,
                                  const beast::error_code& ec) {
  const std::string_view head(raw.data(), raw.size());
  if (ec && ec != bhttp::error::header_limit) return false;  // closed or timed out: no answer
  auto& x = *conn.ex;
  x.started = std::chrono::steady_clock::now();
  x.version = 11;
  x.head_only = false;
  x.keep_alive = false;
  x.route = {};
  const auto line_end = head.find("\r\n");
  const auto line = head.substr(0, line_end);
  const auto first_space = line.find(' ');
  const auto last_space = line.rfind(' ');
  const std::size_t target_bytes =
      first_space == std::string_view::npos
          ? 0
          : (last_space > first_space ? last_space : line.size()) - first_space - 1;
  if (target_bytes > options.max_target_bytes ||
      (line_end == std::string_view::npos && ec == bhttp::error::header_limit)) {
    generate_request_id(x.request_id);
    x.res = problem_response(
        transport_error::uri_too_long,
        "The request-target is longer than " + std::to_string(options.max_target_bytes) + " bytes.",
        x.request_id);
    return true;
  }
  if (ec || line_end == std::string_view::npos) return false;  // 431 or 400 from the parser
  // "HTTP/" DIGIT "." DIGIT at the end of the request line.
  if (constexpr std::string_view kHttp = "HTTP/";
      line.size() >= 8 && line.substr(line.size() - 8, 5) == kHttp) {
    const char major = line[line.size() - 3], dot = line[line.size() - 2],
               minor = line[line.size() - 1];
    const bool digits = major >= '0' && major <= '9' && dot == '.' && minor >= '0' && minor <= '9';
    if (digits && major != '1') {
      generate_request_id(x.request_id);
      x.res = problem_response(transport_error::version_not_supported,
                               "HTTP/" + std::string{major, '.', minor} +
                                   " is not supported; this server speaks HTTP/1.1.",
                               x.request_id);
      return true;
    }
    if (digits && minor > '1') raw[line_end - 1] = '1';
  }
  // From the end of the request line to the blank line: a line break followed by a space or a
  // tab starts a folded continuation (or, right after the request line, a line the RFC says
  // to reject or ignore).
  for (auto at = head.find("\r\n", line_end); at != std::string_view::npos && at + 2 < head.size();
       at = head.find("\r\n", at + 2)) {
    if (head[at + 2] == ' ' || head[at + 2] == '\t') {
      generate_request_id(x.request_id);
      x.res = problem_response(transport_error::malformed_request,
                               "A header line begins with whitespace: obsolete line folding "
                               "(or whitespace before the first field) is not accepted.",
                               x.request_id);
      return true;
    }
  }
  return false;
}

// Reads the request head's outcome into the connection's exchange. Everything decided from the
// head alone is answered without reading a body, and those answers end the connection.
head_verdict server::impl::check_head(connection& conn, const beast::error_code& ec) {
  auto& x = *conn.ex;
  const auto& head = conn.ex->parser->get();
  x.started = std::chrono::steady_clock::now();
  x.version = 11;
  x.head_only = false;
  x.keep_alive = false;
  x.route = {};
  if (ec == bhttp::error::header_limit) {
    pick_request_id(head, x.request_id);
    x.res = problem_response(
        transport_error::headers_too_large,
        "The request head exceeds " + std::to_string(options.max_header_bytes) + " bytes.",
        x.request_id);
    return head_verdict::answer;
  }
  if (ec) {
    if (!is_malformed(ec)) return head_verdict::close_now;
    pick_request_id(head, x.request_id);
    x.res = problem_response(transport_error::malformed_request, ec.message() + ".", x.request_id);
    return head_verdict::answer;
  }

  pick_request_id(head, x.request_id);
  x.head_only = head.method() == bhttp::verb::head;

  x.version = head.version();  // 10 or 11: the parser takes no other (check_raw_head)

  // Message framing (RFC 9112 §6.1): a request with Transfer-Encoding must end in chunked and
  // must not also carry Content-Length; anything else is how requests get smuggled.
  if (head.count(bhttp::field::transfer_encoding) != 0 &&
      (head.count(bhttp::field::content_length) != 0 || !conn.ex->parser->chunked())) {
    x.res = problem_response(transport_error::malformed_request,
                             head.count(bhttp::field::content_length) != 0
                                 ? "The request has both Transfer-Encoding and Content-Length."
                                 : "The request's Transfer-Encoding does not end in chunked.",
                             x.request_id);
    return head_verdict::answer;
  }

  // Transfer codings (RFC 9112 §6.1, §7): chunked exactly once and last; any other coding is
  // one this server does not decode (501). An HTTP/1.0 request has no business with any.
  if (head.count(bhttp::field::transfer_encoding) != 0) {
    std::size_t chunked = 0, others = 0;
    bool last_chunked = false;
    for (const auto& field : head) {
      if (field.name() != bhttp::field::transfer_encoding) continue;
      for (const auto coding : bhttp::token_list(field.value())) {
        last_chunked = beast::iequals(coding, "chunked");
        (last_chunked ? chunked : others) += 1;
      }
    }
    if (head.version() == 10 || chunked > 1 || !last_chunked) {
      x.res = problem_response(
          transport_error::malformed_request,
          head.version() == 10 ? "An HTTP/1.0 request cannot carry Transfer-Encoding."
          : chunked > 1        ? "The request's Transfer-Encoding applies chunked twice."
                               : "The request's Transfer-Encoding does not end in chunked.",
          x.request_id);
      return head_verdict::answer;
    }
    if (others > 0) {
      x.res = problem_response(transport_error::unsupported_transfer_coding,
                               "The request's Transfer-Encoding '" +
                                   std::string(head[bhttp::field::transfer_encoding]) +
                                   "' has a coding other than chunked, which this server does "
                                   "not decode.",
                               x.request_id);
      return head_verdict::answer;
    }
  }

  // RFC 9112 §3.2: an HTTP/1.1 request without a Host header, and any request with more than
  // one or with one that is not a host and optional port, is answered 400 (docs/openapi.yaml,
  // "Conventions"). An empty Host is valid: it says the target has no authority.
  if (const std::size_t hosts = head.count(bhttp::field::host);
      hosts > 1 || (hosts == 0 && head.version() >= 11)) {
    x.res = problem_response(transport_error::malformed_request,
                             hosts == 0 ? "An HTTP/1.1 request must carry a Host header."
                                        : "The request carries more than one Host header.",
                             x.request_id);
    return head_verdict::answer;
  } else if (hosts == 1) {
    const auto host = head[bhttp::field::host];
    const auto authority = boost::urls::parse_authority(host);
    if (!host.empty() && (!authority || authority->has_userinfo())) {
      x.res = problem_response(transport_error::malformed_request,
                               "The Host header is not a host name or address with an optional "
                               "port.",
                               x.request_id);
      return head_verdict::answer;
    }
  }
  if (!check_target(conn)) return head_verdict::answer;

  if (const auto length = conn.ex->parser->content_length();
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
  return conn.ex->parser->is_done() ? head_verdict::handle : head_verdict::read_body;
}

// The request-target's form (RFC 9112 §3.2): origin-form ("/path?query") as nearly every client
// sends it; absolute-form ("http://host/path"), which the request is then routed by, rewritten to
// origin-form (its Host header is ignored, as the RFC says); "*" for OPTIONS, which matches no
// route. Anything else is a 400. False when answered.
bool server::impl::check_target(connection& conn) {
  auto& req = conn.ex->parser->get();
  const std::string_view target = req.target();
  if (!target.empty() && target.front() == '/') return true;
  if (target == "*" && req.method() == bhttp::verb::options) return true;
  const auto uri = boost::urls::parse_absolute_uri(target);
  if (uri && (uri->scheme_id() == boost::urls::scheme::http ||
              uri->scheme_id() == boost::urls::scheme::https)) {
    std::string origin = uri->encoded_path().empty() ? "/" : std::string(uri->encoded_path());
    if (uri->has_query()) origin.append("?").append(uri->encoded_query());
    req.target(origin);
    return true;
  }
  conn.ex->res = problem_response(transport_error::malformed_request,
                                  "The request-target is neither a path (origin-form) nor an "
                                  "absolute http(s) URI.",
                                  conn.ex->request_id);
  return false;
}

// A body over the limit (413) or one that does not parse (400).
void server::impl::refuse_body(connection& conn, const beast::error_code& ec) {
  if (ec == bhttp::error::body_limit) {
    conn.ex->res =
        problem_response(make_problem(error_kind::payload_too_large,
                                      "The request body exceeds " +
                                          std::to_string(options.max_body_bytes) + " bytes."),
                         conn.ex->request_id);
  } else {
    conn.ex->res = problem_response(transport_error::malformed_request, ec.message() + ".",
                                    conn.ex->request_id);
  }
}

// The handler for the request, with its context in the connection; or nullptr when the request
// is already answered in the exchange (no such route: 404; another method: 405 with Allow).
const handler* server::impl::route(connection& conn) {
  const request& req = conn.ex->parser->get();
  conn.ex->keep_alive = req.keep_alive();
  const auto [path, query] = split_target(req.target());
  auto match = routes.find(req.method(), path);
  conn.ex->route = match.route;
  switch (match.outcome) {
    case router::match::kind::not_found:
      conn.ex->res = problem_response(
          make_problem(error_kind::not_found, "No route matches " + std::string(path) + "."),
          conn.ex->request_id);
      return nullptr;
    case router::match::kind::method_not_allowed:
      conn.ex->res =
          problem_response(transport_error::method_not_allowed,
                           std::string(bhttp::to_string(req.method())) + " is not allowed on " +
                               std::string(path) + "; allowed: " + match.allow + ".",
                           conn.ex->request_id);
      conn.ex->res.set(bhttp::field::allow, match.allow);
      return nullptr;
    case router::match::kind::found:
      break;
  }
  conn.ex->context.emplace(request_context{req, match.params, path, query, conn.ex->request_id});
  return match.target;
}

// The per-token rate limit (docs/operations.md, "Rate limit"), checked once the request is read
// so that a refused client keeps its connection. Requests without a token pass: the ops routes
// need none, and the API answers them 401. True when answered 429.
bool server::impl::rate_limited(connection& conn) {
  const request& req = conn.ex->parser->get();
  const auto token = extract_token(req);
  if (!token) return false;
  // The thread's digest cache: authenticate() then finds the same digest without hashing again.
  const auto decision =
      limiter->take(this_thread_token_digests().digest(*token), std::chrono::steady_clock::now());
  if (decision.allowed) return false;
  auto& x = *conn.ex;
  x.keep_alive = req.keep_alive();
  x.route = routes.find(req.method(), split_target(req.target()).first).route;
  const auto after = std::to_string(decision.retry_after.count());
  x.res = problem_response(
      make_problem(error_kind::rate_limited,
                   "This token sent more than " + std::to_string(limiter->rate()) +
                       " requests per second (bursts up to " + std::to_string(limiter->burst()) +
                       "); retry after " + after + " s."),
      x.request_id);
  x.res.set(bhttp::field::retry_after, after);
  x.res.set("RateLimit-Limit", std::to_string(limiter->rate()));
  x.res.set("RateLimit-Remaining", "0");
  x.res.set("RateLimit-Reset", after);
  return true;
}

// One access log line (docs/operations.md, "Access log"): the route's template and the raw path
// (without the query, which may be long), the outcome and its cost, and who asked.
void server::impl::log_access_line(connection& conn, std::size_t bytes_out) {
  const auto& x = *conn.ex;
  boost::json::object line;
  line.reserve(12);
  line["event"] = "access";
  std::string_view method, path;
  if (conn.ex->parser && conn.ex->parser->is_header_done()) {
    const auto& req = conn.ex->parser->get();
    method = req.method_string();
    path = split_target(req.target()).first;
  }
  line["method"] = method;
  line["path"] = path;
  line["route"] = x.route;
  line["status"] = x.res.result_int();
  line["durationUs"] = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::steady_clock::now() - x.started)
                           .count();
  line["bytesIn"] = x.bytes_in;
  line["bytesOut"] = bytes_out;
  line["requestId"] = x.request_id;
  line["peer"] = conn.peer ? std::string_view(*conn.peer) : std::string_view();
  if (conn.peer_trusted && conn.ex->parser && conn.ex->parser->is_header_done()) {
    std::string forwarded;
    for (const auto& field : conn.ex->parser->get()) {
      if (!beast::iequals(field.name_string(), "X-Forwarded-For")) continue;
      if (!forwarded.empty()) forwarded += ", ";
      forwarded += field.value();
    }
    if (!forwarded.empty()) {
      if (forwarded.size() > kMaxForwardedForBytes) forwarded.resize(kMaxForwardedForBytes);
      line["forwardedFor"] = forwarded;
    }
  }
  log_access(line);
}

void server::impl::dispatch_failed(connection& conn, const std::string& failure) {
  log_line({{"level", "error"},
            {"event", "handler_exception"},
            {"method", bhttp::to_string(conn.ex->parser->get().method())},
            {"route", conn.ex->route},
            {"requestId", conn.ex->request_id},
            {"error", failure}});
  conn.ex->res = problem_response(
      make_problem(error_kind::internal, "The server failed to handle the request."),
      conn.ex->request_id);
}

asio::awaitable<next_step> server::impl::respond(connection& conn) {
  auto& x = *conn.ex;
  // While draining, the request in flight is the connection's last.
  const bool keep = x.keep_alive && !draining.load();
  try {
    render_head(x.res, x.version, keep, x.request_id, x.head);
  } catch (const std::exception& e) {
    // A body on 1xx/204/304: a handler bug, answered as one.
    log_line({{"level", "error"},
              {"event", "invalid_response"},
              {"route", x.route},
              {"requestId", x.request_id},
              {"error", e.what()}});
    x.res = problem_response(
        make_problem(error_kind::internal, "The server built an invalid response."), x.request_id);
    render_head(x.res, x.version, keep, x.request_id, x.head);
  }

  // A response to HEAD carries the headers of the GET it mirrors, never the body. Under TLS the
  // head and the body go in one buffer, so in one record.
  if (conn.stream.is_tls() && !x.head_only) x.head += x.res.body();
  const bool gather = !conn.stream.is_tls() && !x.head_only;
  const std::array<asio::const_buffer, 2> bytes{
      asio::buffer(x.head), gather ? asio::buffer(x.res.body()) : asio::const_buffer()};
  conn.expires_after(options.header_timeout);
  const auto [ec, n] = co_await asio::async_write(conn.stream, bytes, use_tuple);
  conn.operation_done();
  shared.stats.record_request(x.route, x.res.result_int(),
                              std::chrono::steady_clock::now() - x.started);
  if (options.access_log) log_access_line(conn, n);
  // An idle connection keeps neither the request nor the answer.
  conn.ex.reset();
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
bool server::set_tls_context(tls_context context) {
  if (!context) return false;
  std::lock_guard lock(impl_->tls_mutex);
  if (!impl_->tls) return false;
  impl_->tls = std::move(context);
  return true;
}

}  // namespace hookd::http
