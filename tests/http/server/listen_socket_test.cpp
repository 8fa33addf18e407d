// listen_socket: binding an address, and adopting a descriptor only when it is a listening TCP
// socket (what systemd passes for ListenStream=).

#include "http/server/listen_socket.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

namespace hookd::http {
namespace {

// A TCP socket on 127.0.0.1, port 0; listening when asked.
int tcp_socket(bool listening) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (listening) {
    EXPECT_EQ(::listen(fd, 16), 0);
  }
  return fd;
}

std::string adopt_error(int fd) {
  auto adopted = listen_socket::adopt(fd);
  EXPECT_FALSE(adopted.has_value());
  ::close(fd);  // refused: still the caller's
  return adopted ? std::string() : adopted.error().detail;
}

TEST(ListenSocket, BindsAFreePortAndReportsIt) {
  auto bound = listen_socket::bind("127.0.0.1", 0);
  ASSERT_TRUE(bound.has_value()) << bound.error().detail;
  EXPECT_NE(bound->local_endpoint().port(), 0);
  EXPECT_TRUE(bound->local_endpoint().address().is_loopback());
}

TEST(ListenSocket, ABusyPortIsAnErrorNamingTheAddress) {
  auto first = listen_socket::bind("127.0.0.1", 0);
  ASSERT_TRUE(first.has_value());
  const auto port = std::to_string(first->local_endpoint().port());
  auto second = listen_socket::bind("127.0.0.1", first->local_endpoint().port());
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().detail,
            "cannot listen on 127.0.0.1:" + port + ": Address already in use");
}

TEST(ListenSocket, AdoptsAListeningTcpSocketWithItsAddress) {
  const int fd = tcp_socket(true);
  sockaddr_in addr{};
  socklen_t size = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
  auto adopted = listen_socket::adopt(fd);
  ASSERT_TRUE(adopted.has_value()) << adopted.error().detail;
  EXPECT_EQ(adopted->local_endpoint().port(), ntohs(addr.sin_port));
  EXPECT_EQ(adopted->release(), fd);
  ::close(fd);
}

TEST(ListenSocket, RefusesWhatIsNotAListeningTcpSocket) {
  EXPECT_NE(adopt_error(tcp_socket(false)).find("is not listening"), std::string::npos);
  EXPECT_NE(adopt_error(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)).find("not a stream"),
            std::string::npos);
  EXPECT_NE(adopt_error(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)).find("IPv4 or IPv6"),
            std::string::npos);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  const auto error = adopt_error(pipe_fds[0]);
  EXPECT_EQ(error, "descriptor " + std::to_string(pipe_fds[0]) + " is not a socket");
}

}  // namespace
}  // namespace hookd::http
