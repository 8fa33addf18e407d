// The bodies of tests/support/test_server.hpp, compiled once into hookd_test_support
// (tests/CMakeLists.txt) instead of in every http test file: Beast's client-side reads and writes
// and the stack's start and stop are most of what a test file would otherwise compile again.

#include "support/test_server.hpp"

#include <fstream>
#include <iterator>

namespace hookd::test {

json::value http_reply::json() const {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec) {
    ADD_FAILURE() << "response body is not JSON (" << ec.message() << "): " << body;
    return nullptr;
  }
  return v;
}

std::string http_reply::str(std::string_view key) const {
  auto v = json();
  if (!v.is_object()) return {};
  const auto* field = v.as_object().if_contains(key);
  return field && field->is_string() ? std::string(field->as_string()) : std::string();
}

http_reply http_client::send(bhttp::request<bhttp::string_body> req) {
  std::string failure;
  auto reply = try_send(std::move(req), &failure);
  if (!reply) {
    ADD_FAILURE() << "HTTP " << failure;
    return {};
  }
  return std::move(*reply);
}

std::optional<http_reply> http_client::try_send(bhttp::request<bhttp::string_body> req,
                                                std::string* failure) {
  req.version(11);
  req.set(bhttp::field::host, "127.0.0.1:" + std::to_string(endpoint_.port()));
  req.prepare_payload();
  boost::system::error_code ec;
  auto failed = [&](const char* what) {
    close();
    if (failure != nullptr) *failure = std::string(what) + " failed: " + ec.message();
    return std::optional<http_reply>();
  };
  if (!stream_) {
    stream_ = std::make_unique<beast::tcp_stream>(ioc_);
    stream_->expires_after(kTimeout);
    stream_->connect(endpoint_, ec);
    if (ec) return failed("connect");
  }

  stream_->expires_after(kTimeout);
  bhttp::write(*stream_, req, ec);
  if (ec) return failed("write");

  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  stream_->expires_after(kTimeout);
  bhttp::read(*stream_, buffer_, parser, ec);
  if (ec) return failed("read");

  auto res = parser.release();
  http_reply out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  for (const auto& field : res) out.headers.insert(field.name_string(), field.value());
  if (!res.keep_alive()) close();
  return out;
}

bhttp::request<bhttp::string_body> http_client::make_request(bhttp::verb method, std::string target,
                                                             std::optional<std::string> body,
                                                             const header_list& headers) {
  bhttp::request<bhttp::string_body> req{method, target, 11};
  for (const auto& [name, value] : headers) req.set(name, value);
  if (body) req.body() = std::move(*body);
  return req;
}

void http_client::close() {
  if (stream_) {
    boost::system::error_code ignored;
    stream_->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    stream_->close();
  }
  stream_.reset();
  buffer_.clear();
}

test_server::~test_server() {
  shutdown();
  std::error_code ignored;
  std::filesystem::remove_all(data_dir_, ignored);
}

http_reply test_server::call(bhttp::verb method, const std::string& target,
                             std::optional<std::string> body, std::string_view token,
                             header_list headers) {
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + std::string(token));
  if (body) headers.emplace_back("Content-Type", "application/json");
  return client_->request(method, target, std::move(body), headers);
}

std::string test_server::create_organization(const std::string& name) {
  auto r = post("/api/v1/organizations", {{"name", name}});
  EXPECT_EQ(r.status, 201u) << r.body;
  return r.str("_id");
}

std::string test_server::create_project(const std::string& org, const std::string& slug) {
  auto r = post(projects_path(org), {{"name", "Project " + slug}, {"slug", slug}});
  EXPECT_EQ(r.status, 201u) << r.body;
  return r.str("_id");
}

test_server::issued_token test_server::create_token(std::initializer_list<std::string> orgs,
                                                    std::initializer_list<std::string> scopes) {
  json::array org_list, scope_list;
  for (const auto& o : orgs) org_list.emplace_back(o);
  for (const auto& s : scopes) scope_list.emplace_back(s);
  auto r = post("/api/v1/tokens",
                {{"name", "test token"}, {"organizations", org_list}, {"scopes", scope_list}});
  EXPECT_EQ(r.status, 201u) << r.body;
  return {r.str("_id"), r.str("token")};
}

json::object test_server::webhook_body(const std::string& name) {
  return {{"name", name},
          {"url", "https://example.com/hooks"},
          {"events", json::array{"order.created", "order.*"}}};
}

json::object test_server::create_webhook(const std::string& org, const std::string& proj,
                                         const json::object& body) {
  auto r = post(webhooks_path(org, proj), body);
  EXPECT_EQ(r.status, 201u) << r.body;
  auto v = r.json();
  return v.is_object() ? v.as_object() : json::object{};
}

test_server::test_server(config settings, std::string_view dir_prefix)
    : settings_(std::move(settings)) {
  std::string pattern =
      (std::filesystem::temp_directory_path() / (std::string(dir_prefix) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  data_dir_ = pattern;
  open();
}

void test_server::open() {
  service_options o;
  if (on_postgresql() && settings_.storage.empty()) {
    auto* pg = hookd::testing::shared_pg_cluster();
    if (pg == nullptr) {
      throw std::runtime_error(
          "HOOKD_TEST_STORAGE=postgresql, but the PostgreSQL server binaries are not installed "
          "(tools/setup.sh)");
    }
    settings_.storage = pg->uri(pg->create_database());  // one fresh database per server
  }
  if (!settings_.storage.empty()) o.master_key = std::string(kMasterKey);
  o.settings = settings_;
  o.settings.data_dir = data_dir_.string();
  o.settings.listen_host = "127.0.0.1";
  o.settings.listen_port = 0;
  o.settings.threads = 2;
  o.admin_token = std::string(kAdminToken);  // what HOOKD_ADMIN_TOKEN would do
  o.log = [](const json::object&) {
  };
  auto opened = service::open(std::move(o));
  if (auto* failed = std::get_if<service_failure>(&opened)) {
    throw std::runtime_error("service: " + failed->message);
  }
  service_ = std::move(std::get<std::unique_ptr<service>>(opened));
  service_->start();
  endpoint_ = service_->endpoint();
  if (client_) {
    client_->set_endpoint(endpoint_);
  } else {
    client_ = std::make_unique<http_client>(endpoint_);
  }
}

void test_server::shutdown() {
  if (client_) client_->close();
  service_.reset();
}

std::vector<std::pair<std::filesystem::path, std::string>> read_all_files(
    const std::filesystem::path& dir) {
  std::vector<std::pair<std::filesystem::path, std::string>> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(entry.path(), std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return out;
}

void expect_problem(const http_reply& r, unsigned status) {
  EXPECT_EQ(r.status, status) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/problem+json") << r.body;
  auto v = r.json();
  ASSERT_TRUE(v.is_object()) << r.body;
  const auto& o = v.as_object();
  ASSERT_TRUE(o.contains("type") && o.at("type").is_string()) << r.body;
  ASSERT_TRUE(o.contains("title") && o.at("title").is_string()) << r.body;
  ASSERT_TRUE(o.contains("detail") && o.at("detail").is_string()) << r.body;
  ASSERT_TRUE(o.contains("status") && o.at("status").is_int64()) << r.body;
  EXPECT_EQ(o.at("status").as_int64(), static_cast<std::int64_t>(status));
  ASSERT_TRUE(o.contains("requestId") && o.at("requestId").is_string()) << r.body;
  EXPECT_FALSE(r.header("X-Request-Id").empty());
  EXPECT_EQ(o.at("requestId").as_string(), r.header("X-Request-Id"));
}

std::vector<std::string> error_fields(const http_reply& r) {
  std::vector<std::string> out;
  auto v = r.json();
  if (!v.is_object()) return out;
  const auto* errors = v.as_object().if_contains("errors");
  if (!errors || !errors->is_array()) return out;
  for (const auto& e : errors->as_array()) {
    if (const auto* f = e.is_object() ? e.as_object().if_contains("field") : nullptr;
        f && f->is_string()) {
      out.emplace_back(f->as_string());
    }
  }
  return out;
}

}  // namespace hookd::test
