#include "http/server/tls_socket.hpp"

#include <openssl/err.h>

#include <signal.h>

#include <cerrno>
#include <stdexcept>

namespace hookd::http {
namespace {

// OpenSSL writes the socket with write(2), which raises SIGPIPE when the peer is gone (reset the
// connection while a response was on its way), and SIGPIPE's default action ends the process.
// The write must fail with EPIPE instead, as Asio's own sends do (MSG_NOSIGNAL): SIGPIPE is
// ignored from the first TLS connection on, unless the program set a handler of its own
// (docs/operations.md, "Signals and shutdown").
void ignore_sigpipe_once() {
  static const bool ignored = [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) != 0) return false;
    if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) return false;
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    return ::sigaction(SIGPIPE, &ignore, nullptr) == 0;
  }();
  static_cast<void>(ignored);
}

}  // namespace

tls_socket::tls_socket(tcp::socket socket, tls_context context)
    : socket_(std::move(socket)),
      context_(std::move(context)),
      ssl_(SSL_new(context_->native_handle())) {
  if (!ssl_) throw std::bad_alloc();
  ignore_sigpipe_once();
  // Partial writes, and a write retried with its bytes elsewhere (the caller's buffer may move
  // between attempts); record buffers given back while empty. Read ahead: a record's header and
  // body in one read of the socket, and what follows them too when it has arrived.
  SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                               SSL_MODE_RELEASE_BUFFERS);
  SSL_set_read_ahead(ssl_.get(), 1);
  beast::error_code ignored;
  socket_.non_blocking(true, ignored);
  SSL_set_fd(ssl_.get(), socket_.native_handle());
  SSL_set_accept_state(ssl_.get());
}

tls_socket::outcome tls_socket::attempt(kind k, asio::mutable_buffer b) noexcept {
  if (!socket_.is_open()) return {want::nothing, asio::error::bad_descriptor, 0};
  if ((k == kind::read || k == kind::write) && b.size() == 0) return {};
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  int rc = 0;
  switch (k) {
    case kind::handshake:
      rc = SSL_do_handshake(ssl_.get());
      break;
    case kind::read:
      rc = SSL_read_ex(ssl_.get(), b.data(), b.size(), &n);
      break;
    case kind::write:
      rc = SSL_write_ex(ssl_.get(), b.data(), b.size(), &n);
      break;
    case kind::shutdown:
      // 0: close_notify sent, the peer's not received (not waited for); 1: both.
      rc = SSL_shutdown(ssl_.get());
      if (rc == 0) rc = 1;
      break;
  }
  if (rc == 1) return {want::nothing, {}, n};
  const int error = SSL_get_error(ssl_.get(), rc);
  switch (error) {
    case SSL_ERROR_WANT_READ:
      return {want::read, {}, 0};
    case SSL_ERROR_WANT_WRITE:
      return {want::write, {}, 0};
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      return {want::nothing, asio::error::eof, 0};
    case SSL_ERROR_SYSCALL: {
      const int e = errno;
      ERR_clear_error();
      if (e == 0) return {want::nothing, asio::ssl::error::stream_truncated, 0};
      return {want::nothing, beast::error_code(e, boost::system::system_category()), 0};
    }
    default: {
      const auto code = ERR_get_error();
      ERR_clear_error();
      // OpenSSL 3 reports a close without close_notify as an error of its own.
      if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        return {want::nothing, asio::ssl::error::stream_truncated, 0};
      }
      if (code == 0) return {want::nothing, asio::ssl::error::stream_truncated, 0};
      return {want::nothing,
              beast::error_code(static_cast<int>(code), asio::error::get_ssl_category()), 0};
    }
  }
}

}  // namespace hookd::http
