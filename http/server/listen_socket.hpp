#pragma once
// A listening TCP socket that no server serves yet: bound here from an address, or adopted from a
// descriptor a supervisor passed (systemd's socket activation, docs/operations.md "Socket
// activation"). hookd acquires its listeners this way before it creates anything on disk, so that
// a port in use fails the start with nothing left behind; then each goes to its server.
//
// Owns the descriptor: the destructor closes it unless release() gave it away. Closing an adopted
// descriptor closes only this process's reference: the supervisor's copy keeps the socket, and the
// connections queued on it, open. Not thread-safe; move it between threads whole.

#include "core/common/error.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <string>

namespace hookd::http {

class listen_socket {
 public:
  // Resolves `host` (an address, or a name resolved once, blocking), binds with SO_REUSEADDR and
  // listens with the system's largest backlog. Port 0 picks a free port. The error names the
  // address and the reason ("Address already in use").
  static result<listen_socket> bind(const std::string& host, std::uint16_t port);
  // Takes `fd` over when it is a listening IPv4 or IPv6 stream socket; otherwise an error saying
  // what it is instead, and `fd` stays the caller's.
  static result<listen_socket> adopt(int fd);

  listen_socket(listen_socket&& other) noexcept;
  listen_socket& operator=(listen_socket&& other) noexcept;
  listen_socket(const listen_socket&) = delete;
  listen_socket& operator=(const listen_socket&) = delete;
  ~listen_socket();

  // The address the socket listens on (the real port when bound to port 0).
  [[nodiscard]] const boost::asio::ip::tcp::endpoint& local_endpoint() const noexcept {
    return endpoint_;
  }
  // The descriptor, now the caller's to close.
  [[nodiscard]] int release() noexcept;

 private:
  listen_socket(int fd, boost::asio::ip::tcp::endpoint endpoint) noexcept
      : fd_(fd), endpoint_(std::move(endpoint)) {}
  int fd_ = -1;
  boost::asio::ip::tcp::endpoint endpoint_;
};

}  // namespace hookd::http
