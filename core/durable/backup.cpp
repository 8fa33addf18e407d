#include "core/durable/backup.hpp"

#include "core/common/json_body.hpp"

#include <boost/json/object.hpp>

#include <string_view>
#include <vector>

namespace hookd {

result<std::string> parse_backup_request(const boost::json::value& body) {
  if (!body.is_object()) {
    return not_a_json_object();
  }
  const boost::json::object& obj = body.get_object();
  std::vector<field_error> errors;
  reject_unknown_fields(obj, {"directory"}, errors);
  std::string directory;
  const auto* value = obj.if_contains("directory");
  if (value == nullptr) {
    errors.push_back({"directory", "is required"});
  } else if (!value->is_string()) {
    errors.push_back({"directory", "must be a string"});
  } else {
    directory.assign(value->get_string().data(), value->get_string().size());
    if (directory.empty() || directory.front() != '/') {
      errors.push_back({"directory",
                        "must be an absolute path on hookd's host, e.g. "
                        "/var/backups/hookd-2026-12-06"});
    } else if (directory.size() > kMaxBackupPathChars) {
      errors.push_back({"directory", "must be at most 4096 characters"});
    } else if (directory.find('\0') != std::string::npos) {
      errors.push_back({"directory", "must not contain NUL"});
    }
  }
  if (!errors.empty()) return validation_problem(std::move(errors));
  return directory;
}

boost::json::value to_json(const backup_report& report) {
  return boost::json::object{
      {"directory", report.directory},
      {"sequence", report.sequence},
      {"bytes", report.bytes},
      {"files", report.files},
      {"linked", report.linked},
      {"masterKey", report.master_key},
      {"adminTokenFile", report.admin_token_file},
      {"durationMs", report.duration.count()},
  };
}

}  // namespace hookd
