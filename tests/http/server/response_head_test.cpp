// render_head: the bytes the server writes before a response body.
#include "http/server/problem.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace hookd::http {
namespace {

TEST(ResponseHead, StatusLineFieldsInOrderAndBlankLine) {
  response res = json_response(bhttp::status::ok, std::string(R"({"a":1})"));
  std::string out = "left over from the previous response";
  render_head(res, 11, true, "abc", out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            "X-Request-Id: abc\r\n"
            "Content-Length: 7\r\n"
            "\r\n");
}

TEST(ResponseHead, Http10KeepAliveAndCloseAreExplicit) {
  response res = empty_response(bhttp::status::no_content);
  std::string out;
  render_head(res, 10, true, "r1", out);
  // No Content-Length on a 204 (RFC 9110 §8.6), which Beast's prepare_payload would add.
  EXPECT_EQ(out, "HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\nX-Request-Id: r1\r\n\r\n");

  response closing = problem_response(make_problem(error_kind::not_found, "No such thing."), "id");
  render_head(closing, 11, false, "id", out);
  EXPECT_EQ(out.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
  EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nContent-Type: application/problem+json\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\nContent-Length: " + std::to_string(closing.body().size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

TEST(ResponseHead, ABodyWhereNoneIsAllowedIsRefused) {
  response res = json_response(bhttp::status::no_content, std::string("{}"));
  std::string out;
  EXPECT_THROW(render_head(res, 11, true, "r", out), std::invalid_argument);
}

TEST(ResponseHead, ThreeDigitCodesWithTheirReason) {
  for (const auto status : {bhttp::status::created, bhttp::status::request_header_fields_too_large,
                            bhttp::status::service_unavailable}) {
    response res{status, 11};
    std::string out;
    render_head(res, 11, true, "r", out);
    const std::string expected = "HTTP/1.1 " + std::to_string(static_cast<unsigned>(status)) + " " +
                                 std::string(bhttp::obsolete_reason(status)) + "\r\n";
    EXPECT_EQ(out.substr(0, expected.size()), expected);
  }
}

// The transport owns framing, connection management and the request id: a handler's own
// Content-Length, Connection or X-Request-Id never reaches the wire twice or wrong.
TEST(ResponseHead, TransportFieldsAreNotTakenFromTheHandler) {
  response res = json_response(bhttp::status::ok, std::string("{}"));
  res.set(bhttp::field::content_length, "99");
  res.set(bhttp::field::connection, "close");
  res.set("x-request-id", "handler-made");
  std::string out;
  render_head(res, 11, true, "r", out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: application/json\r\n"
            "X-Request-Id: r\r\n"
            "Content-Length: 2\r\n"
            "\r\n");
}

}  // namespace
}  // namespace hookd::http
