// core/common/utf8: what counts as valid UTF-8, and the U+FFFD repair that keeps quoted text JSON.

#include "core/common/utf8.hpp"

#include <gtest/gtest.h>

#include <string>

namespace hookd {
namespace {

TEST(Utf8, SequenceLengthsFollowTheEncoding) {
  EXPECT_EQ(utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(utf8_sequence_length("\xC3\xA9", 0), 2u);          // é
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC", 0), 3u);      // €
  EXPECT_EQ(utf8_sequence_length("\xF0\x9F\x98\x80", 0), 4u);  // 😀
  EXPECT_EQ(utf8_sequence_length("\xC0\xAF", 0), 0u);          // overlong
  EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80", 0), 0u);      // a UTF-16 surrogate
  EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80", 0), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xE2\x82", 0), 0u);          // cut short
  EXPECT_EQ(utf8_sequence_length("\x99", 0), 0u);              // a lone continuation byte
}

TEST(Utf8, ValidTextIsUnchangedAndEveryBadByteBecomesOneReplacement) {
  EXPECT_EQ(valid_utf8(""), "");
  EXPECT_EQ(valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(valid_utf8("appli\x99\x9eson"), "appli\xEF\xBF\xBD\xEF\xBF\xBDson");
  EXPECT_EQ(valid_utf8("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(valid_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));  // NUL is valid UTF-8
}

}  // namespace
}  // namespace hookd
