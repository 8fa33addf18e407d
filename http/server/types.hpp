#pragma once
// Names shared by the HTTP layer.

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace hookd::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

using request = bhttp::request<bhttp::string_body>;
using response = bhttp::response<bhttp::string_body>;

}  // namespace hookd::http
