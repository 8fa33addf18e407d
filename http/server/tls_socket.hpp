#pragma once
// TLS on an inbound connection's socket itself: OpenSSL reads and writes the (non-blocking)
// socket directly (SSL_set_fd), and an operation that cannot go on waits for the socket to
// become readable or writable, then tries again. Asio's ssl::stream instead puts a BIO pair and
// two record-sized buffers between the socket and OpenSSL, some 68 KiB per connection for its
// whole life; here an idle connection keeps its SSL object only, whose record buffers OpenSSL
// gives back while nothing is in them (SSL_MODE_RELEASE_BUFFERS). Bytes OpenSSL has read but not
// handed out yet are in it, not in the socket: has_pending() says so, and then a wait for the
// socket to become readable would not see them.
//
// Like the socket: one read and one write at a time, on the connection's executor, which also
// runs the socket's close; nothing reaches OpenSSL once the socket is closed (its descriptor may
// belong to another connection by then). An operation that does not wait completes through a
// post, never inside its initiating call.

#include "http/server/tls.hpp"
#include "http/server/types.hpp"

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <utility>

namespace hookd::http {

class tls_socket {
 public:
  using tcp = asio::ip::tcp;

  // Server side of TLS over `socket` with `context`, which the connection keeps for its lifetime
  // (a reload swaps the server's context, not this one). Nothing is sent until the handshake.
  tls_socket(tcp::socket socket, tls_context context);

  tcp::socket& next_layer() noexcept { return socket_; }
  // OpenSSL holds bytes of the peer's that no read has returned yet.
  [[nodiscard]] bool has_pending() const noexcept { return SSL_has_pending(ssl_.get()) == 1; }

  template <class Token>
  auto async_handshake(asio::ssl::stream_base::handshake_type, Token&& token) {
    return asio::async_compose<Token, void(beast::error_code)>(
        op_without_size{this, kind::handshake}, token, socket_);
  }
  // Sends close_notify; what the peer sends after it is not read here.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return asio::async_compose<Token, void(beast::error_code)>(
        op_without_size{this, kind::shutdown}, token, socket_);
  }
  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_compose<Token, void(beast::error_code, std::size_t)>(
        op_with_size{this, kind::read, first_of(buffers)}, token, socket_);
  }
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    const auto b = first_of(buffers);
    return asio::async_compose<Token, void(beast::error_code, std::size_t)>(
        op_with_size{this, kind::write, {const_cast<void*>(b.data()), b.size()}}, token, socket_);
  }

 private:
  enum class kind { handshake, read, write, shutdown };
  enum class want { nothing, read, write };
  struct outcome {
    want wait = want::nothing;
    beast::error_code ec;
    std::size_t bytes = 0;
  };

  // What OpenSSL makes of one attempt: done (with an error or bytes), or a wait for the socket.
  outcome attempt(kind k, asio::mutable_buffer b) noexcept;

  template <class Buffers>
  static asio::mutable_buffer first_of(const Buffers& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      const auto b = *it;
      if (b.size() > 0) return {const_cast<void*>(static_cast<const void*>(b.data())), b.size()};
    }
    return {};
  }

  // The composed operations: attempt, wait for what OpenSSL wants, attempt again. `waited` tells
  // whether a wait ran, that is whether completing now is outside the initiating call.
  struct op_with_size {
    tls_socket* self_;
    kind kind_;
    asio::mutable_buffer buffer_;
    bool waited_ = false;

    template <class Self>
    void operator()(Self& self) {
      step(self);
    }
    template <class Self>
    void operator()(Self& self, beast::error_code ec) {
      waited_ = true;
      if (ec) return self.complete(ec, 0);
      step(self);
    }
    template <class Self>
    void operator()(Self& self, beast::error_code ec, std::size_t n) {
      self.complete(ec, n);
    }
    template <class Self>
    void step(Self& self) {
      const auto r = self_->attempt(kind_, buffer_);
      if (r.wait != want::nothing) {
        self_->socket_.async_wait(
            r.wait == want::read ? tcp::socket::wait_read : tcp::socket::wait_write,
            std::move(self));
      } else if (waited_) {
        self.complete(r.ec, r.bytes);
      } else {
        // To the operation's own executor (the connection's strand), not the socket's.
        asio::post(beast::bind_front_handler(std::move(self), r.ec, r.bytes));
      }
    }
  };
  struct op_without_size {
    tls_socket* self_;
    kind kind_;
    bool waited_ = false;
    bool posted_ = false;

    template <class Self>
    void operator()(Self& self, beast::error_code ec = {}) {
      if (posted_) return self.complete(ec);
      if (waited_ && ec) return self.complete(ec);
      const auto r = self_->attempt(kind_, {});
      if (r.wait != want::nothing) {
        waited_ = true;
        self_->socket_.async_wait(
            r.wait == want::read ? tcp::socket::wait_read : tcp::socket::wait_write,
            std::move(self));
      } else if (waited_) {
        self.complete(r.ec);
      } else {
        posted_ = true;
        asio::post(beast::bind_front_handler(std::move(self), r.ec));
      }
    }
  };

  struct ssl_free {
    void operator()(SSL* s) const noexcept { SSL_free(s); }
  };

  tcp::socket socket_;
  tls_context context_;  // outlives ssl_, which refers to it
  std::unique_ptr<SSL, ssl_free> ssl_;
};

}  // namespace hookd::http
