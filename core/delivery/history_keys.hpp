#pragma once
// Where history lives in storage: the key layout of the `history` table and its time buckets
// (docs/delivery.md, "History and retention"). Pure functions and values; any thread.
//
// Every key starts with a time bucket and the project, so that the two things that delete history
// delete key ranges: retention drops every bucket older than the window with one range, and a
// project's history is one range per bucket.
//
//   bucket (4 bytes: the bucket's first unix second, big-endian) + project id (12) + kind (1) + ...
//     'e' + event id (12)                                   -> encode(event)
//     'a' + delivery id (12) + attempt number (4, BE)       -> encode(attempt)
//     'd' + status (1) + delivery id (12)                   -> encode(delivery), once finished
//     'w' + webhook id (12) + status (1) + delivery id (12) -> the same record, by webhook
//     's' + subject + NUL + event id (12)                   -> "" (the events of one subject)
//
// An event, its deliveries and their attempts share the bucket of the event's second (a delivery
// id carries that second: ids are made when the event is ingested). Ids grow with time, so within
// one bucket, project, kind (and webhook) and status, a reverse walk is newest first.
//
// Buckets: a bucket_plan is a list of epochs (from second, width); the buckets of an epoch start at
// `from` and every `width` seconds after. The width follows --retention (a sixteenth of it, from
// 1 s to a day), so that the window spans about sixteen buckets and what retention keeps on disk
// beyond the window is at most one bucket. When the retention changes, a new epoch begins; older
// records keep the buckets they were written under, and any second maps to exactly one bucket.

#include "core/common/error.hpp"
#include "core/common/object_id.hpp"
#include "core/delivery/delivery.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

class bucket_plan {
 public:
  struct epoch {
    std::uint32_t from = 0;   // first second of the epoch's first bucket
    std::uint32_t width = 1;  // seconds per bucket, >= 1
    friend bool operator==(const epoch&, const epoch&) = default;
  };

  // One epoch from second 0 with `width`.
  explicit bucket_plan(std::uint32_t width = kDefaultWidth);

  // A sixteenth of the retention in whole seconds, at least 1 s and at most a day.
  static std::uint32_t width_for(std::chrono::milliseconds retention) noexcept;
  static constexpr std::uint32_t kDefaultWidth = 24 * 3600;

  // Starts an epoch of `width` at `from` unless the last epoch has that width already. `from`
  // must not be before the last epoch's start. True when the plan changed.
  bool adopt(std::uint32_t from, std::uint32_t width);

  // The first second of the bucket that holds `second`.
  [[nodiscard]] std::uint32_t start_of(std::uint32_t second) const noexcept;
  // The first second of the bucket before the one starting at `bucket`; nullopt for the first.
  [[nodiscard]] std::optional<std::uint32_t> previous(std::uint32_t bucket) const noexcept;
  // The first second after the bucket starting at `bucket`.
  [[nodiscard]] std::uint32_t end_of(std::uint32_t bucket) const noexcept;

  [[nodiscard]] const std::vector<epoch>& epochs() const noexcept { return epochs_; }

  // [[from,width],...] as JSON text, for the meta table; decode refuses anything else.
  [[nodiscard]] std::string encode() const;
  static result<bucket_plan> decode(std::string_view text);

 private:
  const epoch& epoch_of(std::uint32_t second) const noexcept;
  std::vector<epoch> epochs_;  // ascending `from`, the first from 0
};

// The meta key under which the plan is kept.
inline constexpr std::string_view kBucketPlanKey = "history_buckets";

enum class history_kind : char {
  event = 'e',
  attempt = 'a',
  finished = 'd',
  by_webhook = 'w',
  subject = 's',
};

// The status byte of a finished delivery's keys.
char status_byte(delivery_status s) noexcept;

inline constexpr std::size_t kBucketBytes = 4;
inline constexpr std::size_t kHistoryPrefixBytes = kBucketBytes + object_id::kSize;  // 16

void append_be32(std::string& out, std::uint32_t n);
std::uint32_t read_be32(std::string_view four_bytes) noexcept;

// bucket + project: everything of one project in one bucket.
std::string history_prefix(std::uint32_t bucket, const object_id& project);
// The 4 bytes of a bucket alone: [bucket_key(a), bucket_key(b)) is every bucket from a to b.
std::string bucket_key(std::uint32_t bucket);

std::string event_key(std::uint32_t bucket, const object_id& project, const object_id& event);
std::string attempt_prefix(std::uint32_t bucket, const object_id& project,
                           const object_id& delivery);
std::string attempt_key(std::uint32_t bucket, const object_id& project, const object_id& delivery,
                        std::uint32_t number);
// Finished deliveries of a project: the prefix of one status, and one delivery's key.
std::string finished_prefix(std::uint32_t bucket, const object_id& project, delivery_status s);
std::string finished_key(std::uint32_t bucket, const object_id& project, delivery_status s,
                         const object_id& delivery);
std::string by_webhook_prefix(std::uint32_t bucket, const object_id& project,
                              const object_id& webhook, delivery_status s);
std::string by_webhook_key(std::uint32_t bucket, const object_id& project, const object_id& webhook,
                           delivery_status s, const object_id& delivery);

// The events of one subject in one bucket: the prefix, and one event's entry. A subject holds no
// NUL (check_subject), so one subject's prefix is never another's.
std::string subject_prefix(std::uint32_t bucket, const object_id& project,
                           std::string_view subject);
std::string subject_key(std::uint32_t bucket, const object_id& project, std::string_view subject,
                        const object_id& event);

// The smallest key greater than every key that starts with `prefix` (prefix + 0xFF... would not
// do: ids may hold 0xFF). Empty when there is none (a prefix of only 0xFF bytes).
std::string prefix_end(std::string_view prefix);

// The bucket a history key is in.
std::uint32_t bucket_of_key(std::string_view key) noexcept;

// True when `key` has the exact shape of one record's key of its kind: an event, an attempt, a
// finished delivery or its entry by webhook (subject entries, of any length, and every prefix
// above are not). The storage's memtable insert hints take only such keys.
bool is_record_key(std::string_view key) noexcept;

}  // namespace hookd
