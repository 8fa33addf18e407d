#pragma once
// One inbound connection's byte stream: the TCP socket itself, or TLS over it (--tls-cert). The
// server's session code is written once against this type; each read and write picks its layer
// with one branch, which costs nothing next to the system call behind it. It meets Asio's and
// Beast's AsyncReadStream and AsyncWriteStream requirements. Like the socket: one operation of
// each kind at a time, on the connection's executor. The TLS layer (the socket, and the
// OpenSSL state of tls_socket) lives on the heap, so that a plain connection does not carry it.

#include "http/server/tls_socket.hpp"
#include "http/server/types.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <utility>

namespace hookd::http {

class session_stream {
 public:
  using tcp = asio::ip::tcp;
  using executor_type = tcp::socket::executor_type;
  using tls_stream = tls_socket;

  explicit session_stream(tcp::socket socket) : socket_(std::move(socket)) {}
  // TLS over `socket` with `context`, which the connection keeps for its lifetime (a reload
  // swaps the server's context, not this one). Nothing is sent until the handshake.
  session_stream(tcp::socket socket, tls_context context)
      : socket_(socket.get_executor()),
        tls_(std::make_unique<tls_stream>(std::move(socket), std::move(context))) {}

  [[nodiscard]] bool is_tls() const noexcept { return tls_ != nullptr; }
  tls_stream& tls() noexcept { return *tls_; }
  // Bytes of the peer's are held above the socket (read by TLS, not returned yet): a wait for
  // the socket to become readable would not announce them.
  [[nodiscard]] bool has_pending() const noexcept { return tls_ && tls_->has_pending(); }
  // The TCP socket under everything: for options, cancel, close and the plain bytes around TLS.
  tcp::socket& socket() noexcept { return tls_ ? tls_->next_layer() : socket_; }
  executor_type get_executor() noexcept { return socket().get_executor(); }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto done, const MutableBufferSequence& b) {
          if (tls_) {
            tls_->async_read_some(b, std::move(done));
          } else {
            socket_.async_read_some(b, std::move(done));
          }
        },
        token, buffers);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(beast::error_code, std::size_t)>(
        [this](auto done, const ConstBufferSequence& b) {
          if (tls_) {
            tls_->async_write_some(b, std::move(done));
          } else {
            socket_.async_write_some(b, std::move(done));
          }
        },
        token, buffers);
  }

 private:
  tcp::socket socket_;  // the connection's socket when plain; unused (never opened) under TLS
  std::unique_ptr<tls_stream> tls_;
};

}  // namespace hookd::http
