#pragma once
// The listener's TLS (docs/operations.md, "TLS"): a server context built from a PEM certificate
// chain and its private key. Contexts are immutable once built; a reload builds a new one, and
// each connection keeps the context it was accepted with, so that a SIGHUP changes the
// certificate for new connections only. Thread-safe: pure builders.

#include "core/common/error.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/json/object.hpp>

#include <memory>
#include <string>

namespace hookd::http {

using tls_context = std::shared_ptr<boost::asio::ssl::context>;

// TLS 1.2 and 1.3 only; for TLS 1.2 ECDHE key exchange with AEAD ciphers (Mozilla's
// "intermediate" list); no renegotiation, no compression; ALPN http/1.1 when the client offers
// it. The key must match the certificate, and an encrypted key is refused rather than prompted
// for. On failure a problem (kind validation) whose detail names the file and OpenSSL's reason.
[[nodiscard]] result<tls_context> make_tls_context(const std::string& cert_file,
                                                   const std::string& key_file);

// What a log line says about the context's certificate: subject, issuer, notAfter (RFC 3339)
// and the SHA-256 fingerprint (hex), so that an operator can tell a reload took.
[[nodiscard]] boost::json::object describe_certificate(const tls_context& context);

}  // namespace hookd::http
