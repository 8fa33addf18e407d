// The webhook decoder's fast string scan (codec.cpp, canonical_reader::string) reads eight bytes at
// a time: a byte it must look at (a quote, a backslash, a control character, non-ASCII) is found
// in every position of a word, and the webhook comes out as the general reader reads it.

#include "core/catalog/codec.hpp"

#include <gtest/gtest.h>

#include <string>

namespace hookd {
namespace {

webhook named(std::string name) {
  webhook w;
  w.id = *object_id::parse("65a0f1c2aabbccddee000001");
  w.organization = *object_id::parse("65a0f1c2aabbccddee0000aa");
  w.project = *object_id::parse("65a0f1c2aabbccddee0000bb");
  w.name = std::move(name);
  w.url = "https://example.com/in";
  w.events = {"order.created"};
  w.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  return w;
}

TEST(CodecStrings, EscapesAndNonAsciiAtEveryOffsetRoundTrip) {
  const aes256gcm_key key = aes256gcm_key::generate();
  for (const std::string special : {"\"", "\\", "\n", "\x01", "\x1f", "\xC3\xA9", "\x7f", "/"}) {
    for (std::size_t before = 0; before < 20; ++before) {
      const std::string name = std::string(before, 'x') + special + std::string(9, 'y');
      const webhook w = named(name);
      const auto back = decode_webhook(w.id.binary(), encode(w, key), key);
      ASSERT_TRUE(back) << before << ": " << back.error().detail;
      EXPECT_EQ(back->name, name) << before;
      EXPECT_EQ(back->secret.value(), w.secret.value());
    }
  }
}

TEST(CodecStrings, ARawControlByteOrBadUtf8IsRefusedAtEveryOffset) {
  const aes256gcm_key key = aes256gcm_key::generate();
  const webhook w = named("PLACEHOLDER");
  const std::string value = encode(w, key);
  const auto at = value.find("PLACEHOLDER");
  ASSERT_NE(at, std::string::npos);
  for (const char* raw : {"\x01", "\x1f", "\xFF", "\xC3"}) {
    for (std::size_t before = 0; before < 20; ++before) {
      std::string damaged = value;
      damaged.replace(at, 11, std::string(before, 'x') + raw + std::string(9, 'y'));
      EXPECT_FALSE(decode_webhook(w.id.binary(), damaged, key)) << before;
    }
  }
}

}  // namespace
}  // namespace hookd
