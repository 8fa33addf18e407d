#include "core/delivery/history_keys.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

namespace hookd {

bucket_plan::bucket_plan(std::uint32_t width) : epochs_{{0, std::max<std::uint32_t>(width, 1)}} {}

std::uint32_t bucket_plan::width_for(std::chrono::milliseconds retention) noexcept {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(retention).count() / 16;
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(seconds, 1, kDefaultWidth));
}

bool bucket_plan::adopt(std::uint32_t from, std::uint32_t width) {
  width = std::max<std::uint32_t>(width, 1);
  if (epochs_.back().width == width) return false;
  from = std::max(from, epochs_.back().from);
  if (from == epochs_.back().from) {
    epochs_.back().width = width;  // an epoch nothing was written under yet (same start)
  } else {
    epochs_.push_back({from, width});
  }
  return true;
}

const bucket_plan::epoch& bucket_plan::epoch_of(std::uint32_t second) const noexcept {
  // The last epoch that starts at or before `second`; the first starts at 0.
  auto it = std::upper_bound(epochs_.begin(), epochs_.end(), second,
                             [](std::uint32_t s, const epoch& e) { return s < e.from; });
  return *std::prev(it);
}

std::uint32_t bucket_plan::start_of(std::uint32_t second) const noexcept {
  const epoch& e = epoch_of(second);
  return e.from + (second - e.from) / e.width * e.width;
}

std::optional<std::uint32_t> bucket_plan::previous(std::uint32_t bucket) const noexcept {
  if (bucket == 0) return std::nullopt;
  return start_of(bucket - 1);
}

std::uint32_t bucket_plan::end_of(std::uint32_t bucket) const noexcept {
  const epoch& e = epoch_of(bucket);
  const std::uint64_t end = std::uint64_t{bucket} + e.width;
  // The next epoch may cut the bucket short.
  auto next = std::upper_bound(epochs_.begin(), epochs_.end(), bucket,
                               [](std::uint32_t s, const epoch& x) { return s < x.from; });
  const std::uint64_t limit =
      next == epochs_.end() ? end : std::min<std::uint64_t>(end, next->from);
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(limit, 0xFFFFFFFFu));
}

std::string bucket_plan::encode() const {
  boost::json::array out;
  for (const epoch& e : epochs_) out.push_back(boost::json::array{e.from, e.width});
  return boost::json::serialize(out);
}

result<bucket_plan> bucket_plan::decode(std::string_view text) {
  const auto bad = [&text] {
    return make_problem(error_kind::internal,
                        "the history bucket plan in the meta table is not a list of "
                        "[from, width] pairs ascending from 0: " +
                            std::string(text.substr(0, 200)));
  };
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_array() || v.get_array().empty()) return bad();
  bucket_plan plan;
  plan.epochs_.clear();
  for (const boost::json::value& item : v.get_array()) {
    const boost::json::array* pair = item.if_array();
    if (pair == nullptr || pair->size() != 2) return bad();
    const auto from = (*pair)[0].if_int64();
    const auto width = (*pair)[1].if_int64();
    if (from == nullptr || width == nullptr || *from < 0 || *from > 0xFFFFFFFFLL || *width < 1 ||
        *width > 0xFFFFFFFFLL) {
      return bad();
    }
    const auto f = static_cast<std::uint32_t>(*from);
    if (plan.epochs_.empty() ? f != 0 : f <= plan.epochs_.back().from) return bad();
    plan.epochs_.push_back({f, static_cast<std::uint32_t>(*width)});
  }
  return plan;
}

char status_byte(delivery_status s) noexcept {
  switch (s) {
    case delivery_status::succeeded:
      return 's';
    case delivery_status::failed:
      return 'f';
    default:
      return 'p';  // never stored: pending deliveries live in the queue table
  }
}

void append_be32(std::string& out, std::uint32_t n) {
  out.push_back(static_cast<char>((n >> 24) & 0xFF));
  out.push_back(static_cast<char>((n >> 16) & 0xFF));
  out.push_back(static_cast<char>((n >> 8) & 0xFF));
  out.push_back(static_cast<char>(n & 0xFF));
}

std::uint32_t read_be32(std::string_view b) noexcept {
  std::uint32_t n = 0;
  for (std::size_t i = 0; i < 4 && i < b.size(); ++i) {
    n = (n << 8) | static_cast<std::uint8_t>(b[i]);
  }
  return n;
}

std::string bucket_key(std::uint32_t bucket) {
  std::string key;
  append_be32(key, bucket);
  return key;
}

std::string history_prefix(std::uint32_t bucket, const object_id& project) {
  std::string key;
  key.reserve(kHistoryPrefixBytes + 1 + 2 * object_id::kSize + 5);
  append_be32(key, bucket);
  key.append(project.binary());
  return key;
}

namespace {

std::string with_kind(std::uint32_t bucket, const object_id& project, history_kind kind) {
  std::string key = history_prefix(bucket, project);
  key.push_back(static_cast<char>(kind));
  return key;
}

}  // namespace

std::string event_key(std::uint32_t bucket, const object_id& project, const object_id& event) {
  return with_kind(bucket, project, history_kind::event).append(event.binary());
}

std::string attempt_prefix(std::uint32_t bucket, const object_id& project,
                           const object_id& delivery) {
  return with_kind(bucket, project, history_kind::attempt).append(delivery.binary());
}

std::string attempt_key(std::uint32_t bucket, const object_id& project, const object_id& delivery,
                        std::uint32_t number) {
  std::string key = attempt_prefix(bucket, project, delivery);
  append_be32(key, number);
  return key;
}

std::string finished_prefix(std::uint32_t bucket, const object_id& project, delivery_status s) {
  std::string key = with_kind(bucket, project, history_kind::finished);
  key.push_back(status_byte(s));
  return key;
}

std::string finished_key(std::uint32_t bucket, const object_id& project, delivery_status s,
                         const object_id& delivery) {
  return finished_prefix(bucket, project, s).append(delivery.binary());
}

std::string by_webhook_prefix(std::uint32_t bucket, const object_id& project,
                              const object_id& webhook, delivery_status s) {
  std::string key = with_kind(bucket, project, history_kind::by_webhook);
  key.append(webhook.binary());
  key.push_back(status_byte(s));
  return key;
}

std::string by_webhook_key(std::uint32_t bucket, const object_id& project, const object_id& webhook,
                           delivery_status s, const object_id& delivery) {
  return by_webhook_prefix(bucket, project, webhook, s).append(delivery.binary());
}

std::string subject_prefix(std::uint32_t bucket, const object_id& project,
                           std::string_view subject) {
  std::string key = with_kind(bucket, project, history_kind::subject);
  key.append(subject);
  key.push_back('\0');
  return key;
}

std::string subject_key(std::uint32_t bucket, const object_id& project, std::string_view subject,
                        const object_id& event) {
  return subject_prefix(bucket, project, subject).append(event.binary());
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xFF) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

std::uint32_t bucket_of_key(std::string_view key) noexcept {
  return read_be32(key.substr(0, kBucketBytes));
}

bool is_record_key(std::string_view key) noexcept {
  constexpr std::size_t id = object_id::kSize;
  constexpr std::size_t kind_at = kHistoryPrefixBytes;
  if (key.size() <= kind_at) return false;
  switch (static_cast<history_kind>(key[kind_at])) {
    case history_kind::event:  // + event id
      return key.size() == kind_at + 1 + id;
    case history_kind::attempt:  // + delivery id + number
      return key.size() == kind_at + 1 + id + 4;
    case history_kind::finished:  // + status + delivery id
      return key.size() == kind_at + 2 + id;
    case history_kind::by_webhook:  // + webhook id + status + delivery id
      return key.size() == kind_at + 1 + id + 1 + id;
    default:
      return false;
  }
}

}  // namespace hookd
