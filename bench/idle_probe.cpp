// idle_probe: what idle keep-alive connections cost a server in resident memory.
//
//   idle_probe --port PORT --path PATH --pid PID [--connections N] [--header 'Name: value']...
//              [--tls]
//
// Opens N connections to 127.0.0.1:PORT one after another, sends one GET of PATH on each and reads
// its whole response (keep-alive: the connection stays open), then leaves them all idle for a
// second and reads the server's VmRSS (/proc/PID/status) again. Before the first connection it
// reads it too. After the measurement every 100th connection sends a second GET, which must be
// answered 200 like the first (an idle connection is still served), and all are closed.
//
// Prints one JSON object on stdout: connections, rss_kib_before, rss_kib_after,
// bytes_per_connection ((after - before) * 1024 / N), reused_ok. Exit status 0 when every
// request was answered 200, 1 otherwise (the reason on stderr), 2 bad usage. Needs N + a few
// file descriptors (ulimit -n), and so does the server. Loopback only. With --tls every
// connection speaks TLS (any certificate is accepted: loopback), the handshake first.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "idle_probe: %s\n", why.c_str());
  std::exit(1);
}

long rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  fail("no VmRSS for pid " + std::to_string(pid));
}

// A connection: its socket, and its TLS session with --tls (null without).
struct conn {
  int fd = -1;
  SSL* ssl = nullptr;
};

std::string tls_error() {
  char text[256];
  ERR_error_string_n(ERR_get_error(), text, sizeof text);
  return text;
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket: " + std::string(std::strerror(errno)));
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    fail("connect: " + std::string(std::strerror(errno)));
  }
  return fd;
}

conn open_connection(std::uint16_t port, SSL_CTX* tls) {
  conn c{connect_to(port), nullptr};
  if (tls == nullptr) return c;
  c.ssl = SSL_new(tls);
  if (c.ssl == nullptr || SSL_set_fd(c.ssl, c.fd) != 1) fail("SSL_new: " + tls_error());
  if (SSL_connect(c.ssl) != 1) fail("TLS handshake: " + tls_error());
  return c;
}

long send_some(const conn& c, const char* data, std::size_t size) {
  if (c.ssl == nullptr) return ::send(c.fd, data, size, MSG_NOSIGNAL);
  std::size_t written = 0;
  return SSL_write_ex(c.ssl, data, size, &written) == 1 ? static_cast<long>(written) : -1;
}

long recv_some(const conn& c, char* data, std::size_t size) {
  if (c.ssl == nullptr) return ::recv(c.fd, data, size, 0);
  std::size_t read = 0;
  if (SSL_read_ex(c.ssl, data, size, &read) == 1) return static_cast<long>(read);
  return SSL_get_error(c.ssl, 0) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

// Sends `request` and reads one response (head, then Content-Length bytes); its status code.
int exchange(const conn& c, const std::string& request) {
  std::size_t sent = 0;
  while (sent < request.size()) {
    const auto n = send_some(c, request.data() + sent, request.size() - sent);
    if (n <= 0) fail("send: " + std::string(std::strerror(errno)));
    sent += static_cast<std::size_t>(n);
  }
  std::string in;
  std::size_t head_end = std::string::npos, need = 0;
  char buf[16384];
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        head_end += 4;
        std::string lower(in, 0, head_end);
        for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        const auto at = lower.find("\r\ncontent-length:");
        need = head_end +
               (at == std::string::npos ? 0 : std::strtoul(lower.c_str() + at + 17, nullptr, 10));
      }
    }
    if (head_end != std::string::npos && in.size() >= need) break;
    const auto n = recv_some(c, buf, sizeof buf);
    if (n <= 0)
      fail(n == 0 ? "the server closed a connection"
                  : "recv: " + std::string(std::strerror(errno)));
    in.append(buf, static_cast<std::size_t>(n));
  }
  if (!in.starts_with("HTTP/1.1 ") || in.size() < 12) fail("not an HTTP/1.1 response");
  return std::atoi(in.c_str() + 9);
}

void usage() {
  std::fprintf(stderr,
               "usage: idle_probe --port PORT --path PATH --pid PID [--connections N] "
               "[--header 'Name: value']... [--tls]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  // A write to a connection the server closed (OpenSSL writes with write(2)) fails with EPIPE
  // and is reported, instead of ending the probe silently.
  std::signal(SIGPIPE, SIG_IGN);
  long port = 0, pid = 0, connections = 10'000;
  std::string path;
  std::vector<std::string> headers;
  bool tls = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--tls") {
      tls = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char* value = argv[++i];
    if (arg == "--port") {
      port = std::strtol(value, nullptr, 10);
    } else if (arg == "--pid") {
      pid = std::strtol(value, nullptr, 10);
    } else if (arg == "--connections") {
      connections = std::strtol(value, nullptr, 10);
    } else if (arg == "--path") {
      path = value;
    } else if (arg == "--header") {
      headers.emplace_back(value);
    } else {
      usage();
    }
  }
  if (port <= 0 || port > 65535 || pid <= 0 || connections <= 0 || connections > 100'000 ||
      !path.starts_with('/')) {
    usage();
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const auto& h : headers) request += h + "\r\n";
  request += "\r\n";

  SSL_CTX* tls_context = nullptr;
  if (tls) {
    tls_context = SSL_CTX_new(TLS_client_method());
    if (tls_context == nullptr) fail("SSL_CTX_new: " + tls_error());
    SSL_CTX_set_verify(tls_context, SSL_VERIFY_NONE, nullptr);
  }

  const long before = rss_kib(static_cast<int>(pid));
  std::vector<conn> fds;
  fds.reserve(static_cast<std::size_t>(connections));
  for (long i = 0; i < connections; ++i) {
    const conn c = open_connection(static_cast<std::uint16_t>(port), tls_context);
    fds.push_back(c);
    if (const int status = exchange(c, request); status != 200) {
      fail("connection " + std::to_string(i) + " was answered " + std::to_string(status));
    }
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long after = rss_kib(static_cast<int>(pid));
  std::size_t reused = 0;
  for (std::size_t i = 0; i < fds.size(); i += 100) {
    if (exchange(fds[i], request) != 200) fail("a second request was not answered 200");
    ++reused;
  }
  for (const conn& c : fds) {
    if (c.ssl != nullptr) SSL_free(c.ssl);
    ::close(c.fd);
  }
  if (tls_context != nullptr) SSL_CTX_free(tls_context);
  std::printf(
      "{\"connections\":%ld,\"rss_kib_before\":%ld,\"rss_kib_after\":%ld,"
      "\"bytes_per_connection\":%ld,\"reused_ok\":%zu}\n",
      connections, before, after, (after - before) * 1024 / connections, reused);
  return 0;
}
