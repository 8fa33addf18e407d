#include "http/server/listen_socket.hpp"

#include <boost/asio/io_context.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

namespace hookd::http {
namespace {

using tcp = boost::asio::ip::tcp;

problem not_listening(int fd, const std::string& what) {
  return make_problem(error_kind::internal, "descriptor " + std::to_string(fd) + " " + what);
}

// One integer socket option; nullopt with errno set when the call fails.
std::optional<int> int_option(int fd, int name) {
  int value = 0;
  socklen_t size = sizeof value;
  if (::getsockopt(fd, SOL_SOCKET, name, &value, &size) != 0) return std::nullopt;
  return value;
}

}  // namespace

result<listen_socket> listen_socket::bind(const std::string& host, std::uint16_t port) {
  const auto fail = [&](const boost::system::error_code& ec) -> result<listen_socket> {
    return make_problem(error_kind::internal, "cannot listen on " + host + ":" +
                                                  std::to_string(port) + ": " + ec.message());
  };
  // The io_context only carries the calls below; the descriptor leaves it through release().
  boost::asio::io_context ioc;
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    // A host name ("localhost"): start-up may block on the resolver, once.
    tcp::resolver resolver(ioc);
    const auto found = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return fail(ec);
    if (found.empty()) return fail(boost::asio::error::host_not_found);
    endpoint = found.begin()->endpoint();
  }
  tcp::acceptor acceptor(ioc);
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail(ec);
  acceptor.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (ec) return fail(ec);
  acceptor.bind(endpoint, ec);
  if (ec) return fail(ec);
  acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ec);
  const auto local = acceptor.local_endpoint(ec);
  if (ec) return fail(ec);
  const int fd = acceptor.release(ec);
  if (ec) return fail(ec);
  return listen_socket(fd, local);
}

result<listen_socket> listen_socket::adopt(int fd) {
  const auto type = int_option(fd, SO_TYPE);
  if (!type) {
    return not_listening(
        fd, errno == ENOTSOCK ? "is not a socket"
                              : std::string("cannot be inspected (") + std::strerror(errno) + ")");
  }
  if (*type != SOCK_STREAM) return not_listening(fd, "is not a stream socket");
  const auto domain = int_option(fd, SO_DOMAIN);
  if (!domain || (*domain != AF_INET && *domain != AF_INET6)) {
    return not_listening(fd, "is not an IPv4 or IPv6 socket");
  }
  const auto protocol = int_option(fd, SO_PROTOCOL);
  if (!protocol || *protocol != IPPROTO_TCP) return not_listening(fd, "is not a TCP socket");
  const auto accepting = int_option(fd, SO_ACCEPTCONN);
  if (!accepting || *accepting == 0) return not_listening(fd, "is not listening");

  tcp::endpoint local;
  socklen_t size = static_cast<socklen_t>(local.capacity());
  if (::getsockname(fd, local.data(), &size) != 0) {
    return not_listening(fd, std::string("has no address (") + std::strerror(errno) + ")");
  }
  local.resize(size);
  return listen_socket(fd, local);
}

listen_socket::listen_socket(listen_socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), endpoint_(other.endpoint_) {}

listen_socket& listen_socket::operator=(listen_socket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    endpoint_ = other.endpoint_;
  }
  return *this;
}

listen_socket::~listen_socket() {
  if (fd_ >= 0) ::close(fd_);
}

int listen_socket::release() noexcept {
  return std::exchange(fd_, -1);
}

}  // namespace hookd::http
