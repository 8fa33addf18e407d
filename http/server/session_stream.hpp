#pragma once
// One inbound connection's byte stream: the TCP socket itself, or TLS over it (--tls-cert). The
// server's session code is written once against this type; each read and write picks its layer
// with one branch, which costs nothing next to the system call behind it. It meets Asio's and
// Beast's AsyncReadStream and AsyncWriteStream requirements. Like the socket: one operation of
// each kind at a time, on the connection's executor.

#include "http/server/tls.hpp"
#include "http/server/types.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <optional>
#include <utility>

namespace hookd::http {

class session_stream {
 public:
  using tcp = asio::ip::tcp;
  using executor_type = tcp::socket::executor_type;
  using tls_stream = asio::ssl::stream<tcp::socket>;

  explicit session_stream(tcp::socket socket) : socket_(std::move(socket)) {}
  // TLS over `socket` with `context`, which the connection keeps for its lifetime (a reload
  // swaps the server's context, not this one). Nothing is sent until the handshake.
  session_stream(tcp::socket socket, tls_context context)
      : socket_(socket.get_executor()),
        context_(std::move(context)),
        tls_(std::in_place, std::move(socket), *context_) {}

  [[nodiscard]] bool is_tls() const noexcept { return tls_.has_value(); }
  tls_stream& tls() noexcept { return *tls_; }
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
  tls_context context_;
  std::optional<tls_stream> tls_;
};

}  // namespace hookd::http
