#include "core/delivery/address_guard.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace hookd {

// Readable failure messages (found by ADL).
void PrintTo(const ip_address& a, std::ostream* os) {
  *os << a.to_string();
}

namespace {

ip_address ip(std::string_view text) {
  const auto a = parse_ip_literal(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(ip_address{});
}

struct case_row {
  const char* host;      // as it would appear in a URL
  const char* expected;  // canonical text of the parsed address
  address_class cls;
};

// Every range of the guard, both families, and the legacy IPv4 spellings. Each row is parsed
// as a URL host, printed back, and classified.
const case_row kTable[] = {
    // IPv4, public
    {"8.8.8.8", "8.8.8.8", address_class::public_unicast},
    {"1.1.1.1", "1.1.1.1", address_class::public_unicast},
    {"93.184.216.34", "93.184.216.34", address_class::public_unicast},
    {"100.63.255.255", "100.63.255.255", address_class::public_unicast},  // just below CGNAT
    {"100.128.0.0", "100.128.0.0", address_class::public_unicast},        // just above it
    {"172.32.0.1", "172.32.0.1", address_class::public_unicast},          // outside 172.16/12
    {"192.88.98.1", "192.88.98.1", address_class::public_unicast},
    {"198.20.0.1", "198.20.0.1", address_class::public_unicast},  // outside 198.18/15
    {"223.255.255.255", "223.255.255.255", address_class::public_unicast},
    // IPv4, special
    {"0.0.0.0", "0.0.0.0", address_class::unspecified},
    {"0.1.2.3", "0.1.2.3", address_class::unspecified},
    {"10.0.0.1", "10.0.0.1", address_class::private_use},
    {"10.255.255.255", "10.255.255.255", address_class::private_use},
    {"100.64.0.1", "100.64.0.1", address_class::shared_cgnat},
    {"100.127.255.254", "100.127.255.254", address_class::shared_cgnat},
    {"127.0.0.1", "127.0.0.1", address_class::loopback},
    {"127.255.0.9", "127.255.0.9", address_class::loopback},
    {"169.254.169.254", "169.254.169.254", address_class::link_local},  // cloud metadata
    {"172.16.0.1", "172.16.0.1", address_class::private_use},
    {"172.31.255.255", "172.31.255.255", address_class::private_use},
    {"192.0.0.8", "192.0.0.8", address_class::reserved},
    {"192.0.2.55", "192.0.2.55", address_class::documentation},
    {"192.88.99.1", "192.88.99.1", address_class::reserved},
    {"192.168.1.1", "192.168.1.1", address_class::private_use},
    {"198.18.0.1", "198.18.0.1", address_class::benchmarking},
    {"198.19.255.255", "198.19.255.255", address_class::benchmarking},
    {"198.51.100.7", "198.51.100.7", address_class::documentation},
    {"203.0.113.9", "203.0.113.9", address_class::documentation},
    {"224.0.0.1", "224.0.0.1", address_class::multicast},
    {"239.255.255.250", "239.255.255.250", address_class::multicast},
    {"240.0.0.1", "240.0.0.1", address_class::reserved},
    {"255.255.255.254", "255.255.255.254", address_class::reserved},
    {"255.255.255.255", "255.255.255.255", address_class::broadcast},
    // IPv4, legacy spellings of loopback and friends (WHATWG / inet_aton)
    {"2130706433", "127.0.0.1", address_class::loopback},
    {"0x7f.1", "127.0.0.1", address_class::loopback},
    {"0177.0.0.1", "127.0.0.1", address_class::loopback},
    {"127.1", "127.0.0.1", address_class::loopback},
    {"0x7f000001", "127.0.0.1", address_class::loopback},
    {"0X7F.0.0.01", "127.0.0.1", address_class::loopback},
    {"127.0.1", "127.0.0.1", address_class::loopback},
    {"127.0.0.1.", "127.0.0.1", address_class::loopback},
    {"0", "0.0.0.0", address_class::unspecified},
    {"0x0a.0.0.1", "10.0.0.1", address_class::private_use},
    {"167772161", "10.0.0.1", address_class::private_use},
    {"0251.0376.0251.0376", "169.254.169.254", address_class::link_local},
    {"0xa9fea9fe", "169.254.169.254", address_class::link_local},
    {"192.11010305", "192.168.1.1", address_class::private_use},
    // IPv6, public
    {"[2606:4700:4700::1111]", "2606:4700:4700::1111", address_class::public_unicast},
    {"2001:4860:4860::8888", "2001:4860:4860::8888", address_class::public_unicast},
    {"[2a00:1450:4001:81b::200e]", "2a00:1450:4001:81b::200e", address_class::public_unicast},
    {"[::ffff:8.8.8.8]", "::ffff:8.8.8.8", address_class::public_unicast},
    {"[64:ff9b::808:808]", "64:ff9b::808:808", address_class::public_unicast},  // NAT64 8.8.8.8
    {"[2002:808:808::1]", "2002:808:808::1", address_class::public_unicast},    // 6to4 8.8.8.8
    // IPv6, special
    {"[::]", "::", address_class::unspecified},
    {"[::1]", "::1", address_class::loopback},
    {"[0:0:0:0:0:0:0:1]", "::1", address_class::loopback},
    {"[::ffff:7f00:1]", "::ffff:127.0.0.1", address_class::loopback},
    {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1", address_class::loopback},
    {"::ffff:10.0.0.1", "::ffff:10.0.0.1", address_class::private_use},
    {"[::ffff:169.254.169.254]", "::ffff:169.254.169.254", address_class::link_local},
    {"[::127.0.0.1]", "::7f00:1", address_class::reserved},  // IPv4-compatible, deprecated
    {"[::8.8.8.8]", "::808:808", address_class::reserved},
    {"64:ff9b::a00:1", "64:ff9b::a00:1", address_class::private_use},  // NAT64 of 10.0.0.1
    {"[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1", address_class::loopback},
    {"[64:ff9b:1::8.8.8.8]", "64:ff9b:1::808:808", address_class::private_use},
    {"[100::1]", "100::1", address_class::discard},
    {"[100::ffff:ffff:ffff:ffff]", "100::ffff:ffff:ffff:ffff", address_class::discard},
    // Teredo: server 65.54.227.120, client 8.8.8.8 (public both) and client 127.0.0.1.
    {"[2001:0:4136:e378:8000:63bf:f7f7:f7f7]", "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
     address_class::teredo},
    {"[2001:0:4136:e378:8000:63bf:80ff:fffe]", "2001:0:4136:e378:8000:63bf:80ff:fffe",
     address_class::teredo},
    {"[2001:2::1]", "2001:2::1", address_class::benchmarking},
    {"[2001:10::1]", "2001:10::1", address_class::reserved},  // ORCHID
    {"[2001:20::1]", "2001:20::1", address_class::reserved},  // ORCHIDv2
    {"[2001:1::1]", "2001:1::1", address_class::reserved},    // IETF protocol assignments
    {"[2001:db8::1]", "2001:db8::1", address_class::documentation},
    {"[2002:c0a8:0101::1]", "2002:c0a8:101::1", address_class::private_use},  // 6to4 192.168.1.1
    {"[2002:7f00:1::]", "2002:7f00:1::", address_class::loopback},
    {"[3fff::1]", "3fff::1", address_class::documentation},
    {"[3fff:fff::1]", "3fff:fff::1", address_class::documentation},
    {"[3fff:1000::1]", "3fff:1000::1", address_class::public_unicast},  // outside 3fff::/20
    {"[5f00::1]", "5f00::1", address_class::reserved},
    {"[fc00::1]", "fc00::1", address_class::unique_local},
    {"[fd12:3456:789a::1]", "fd12:3456:789a::1", address_class::unique_local},
    {"[fe80::1]", "fe80::1", address_class::link_local},
    {"[febf::1]", "febf::1", address_class::link_local},
    {"[fec0::1]", "fec0::1", address_class::reserved},  // site-local, deprecated
    {"[ff02::1]", "ff02::1", address_class::multicast},
    {"[ff05::1:3]", "ff05::1:3", address_class::multicast},
    {"[4000::1]", "4000::1", address_class::reserved},  // outside 2000::/3: unallocated
    {"[1::1]", "1::1", address_class::reserved},
};

TEST(AddressGuard, TableOfRanges) {
  ASSERT_GE(std::size(kTable), 40u);
  for (const case_row& row : kTable) {
    const auto parsed = parse_ip_literal(row.host);
    ASSERT_TRUE(parsed.has_value()) << row.host;
    EXPECT_EQ(parsed->to_string(), row.expected) << row.host;
    EXPECT_EQ(classify(*parsed), row.cls)
        << row.host << " classified " << to_string(classify(*parsed)) << ", expected "
        << to_string(row.cls);
    EXPECT_EQ(is_public(*parsed), row.cls == address_class::public_unicast) << row.host;
  }
}

TEST(AddressGuard, FamiliesAndBytes) {
  const ip_address v4 = ip("127.1");
  EXPECT_TRUE(v4.is_v4());
  EXPECT_EQ(v4.bytes().size(), 4u);
  EXPECT_EQ(v4.v4_value(), 0x7f000001u);
  EXPECT_EQ(v4, ip_address::v4({127, 0, 0, 1}));
  EXPECT_EQ(v4, ip_address::v4_from_value(0x7f000001u));

  const ip_address v6 = ip("[::1]");
  EXPECT_TRUE(v6.is_v6());
  EXPECT_EQ(v6.bytes().size(), 16u);
  EXPECT_EQ(v6.bytes()[15], 1);
  // The mapped form is an IPv6 address, not equal to its IPv4 (but classified alike).
  EXPECT_NE(ip("[::ffff:127.0.0.1]"), v4);

  const std::uint8_t four[] = {10, 0, 0, 1};
  EXPECT_EQ(ip_address::from_bytes(four), ip("10.0.0.1"));
  const std::uint8_t sixteen[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  EXPECT_EQ(ip_address::from_bytes(sixteen), ip("2001:db8::1"));
  const std::uint8_t five[] = {1, 2, 3, 4, 5};
  EXPECT_EQ(ip_address::from_bytes(five), std::nullopt);
  EXPECT_EQ(ip_address{}.to_string(), "0.0.0.0");
}

TEST(AddressGuard, Ipv6TextIsRfc5952) {
  EXPECT_EQ(ip("2001:0DB8:0000:0000:0000:0000:0000:0001").to_string(), "2001:db8::1");
  EXPECT_EQ(ip("2001:db8:0:1:1:1:1:1").to_string(), "2001:db8:0:1:1:1:1:1");  // one zero: no ::
  EXPECT_EQ(ip("2001:0:0:1:0:0:0:1").to_string(), "2001:0:0:1::1");           // the longest run
  EXPECT_EQ(ip("2001:db8:0:0:1:0:0:1").to_string(), "2001:db8::1:0:0:1");     // the first on a tie
  EXPECT_EQ(ip("1:2:3:4:5:6:7::").to_string(), "1:2:3:4:5:6:7:0");
  EXPECT_EQ(ip("fe80::").to_string(), "fe80::");
}

TEST(AddressGuard, NamesAndMalformedLiteralsAreNotParsedAsAddresses) {
  for (const char* host : {
           "example.com",
           "localhost",
           "127.0.0.1.nip.io",
           "0x7f.example",
           "1.2.3.com",
           "",
           ".",
           // invalid IPv4 (WHATWG fails them; they are refused by check_target, not resolved)
           "1.2.3.4.5",
           "256.0.0.1",
           "1.2.3.256",
           "1.16777216",
           "4294967296",
           "0x100000000",
           "09",
           "08.0.0.1",
           "0xg",
           "1..2",
           "1.2.3.4..",
           "foo.123",
           // invalid or zoned IPv6
           "[fe80::1%eth0]",
           "fe80::1%25eth0",
           "[fe80::1%25eth0]",
           "[::1",
           "::1]",
           "[]",
           "[1:2:3:4:5:6:7:8:9]",
           "[1::2::3]",
           "[12345::]",
           "[::ffff:127.1]",
           "[::ffff:0x7f.0.0.1]",
           "[::ffff:127.0.0.01]",
           "[::ffff:127.0.0.256]",
           "[:1]",
           "[1:]",
           "[1.2.3.4]",
       }) {
    EXPECT_EQ(parse_ip_literal(host), std::nullopt) << host;
  }
  EXPECT_EQ(parse_ip_literal("1.65536"), ip("1.1.0.0"));  // the last part fills 3 bytes
  EXPECT_EQ(parse_ip_literal("4294967295"), ip_address::v4_from_value(0xffffffffu));
  EXPECT_EQ(parse_ip_literal("0x.0x.0x.0x"), ip_address{});
}

TEST(AddressGuard, EndsInANumber) {
  EXPECT_TRUE(host_ends_in_a_number("127.1"));
  EXPECT_TRUE(host_ends_in_a_number("foo.123"));
  EXPECT_TRUE(host_ends_in_a_number("foo.0x1f"));
  EXPECT_TRUE(host_ends_in_a_number("1.2.3.4."));
  EXPECT_FALSE(host_ends_in_a_number("example.com"));
  EXPECT_FALSE(host_ends_in_a_number("123.example"));
  EXPECT_FALSE(host_ends_in_a_number("."));
  EXPECT_FALSE(host_ends_in_a_number(""));
}

TEST(CheckTarget, PublicLiteralIsAllowedWithoutResolution) {
  const auto d = check_target("8.8.8.8", {}, false);
  EXPECT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.addresses, std::vector<ip_address>{ip("8.8.8.8")});
  const auto v6 = check_target("[2606:4700:4700::1111]", {}, false);
  EXPECT_TRUE(v6.allowed);
  EXPECT_EQ(v6.addresses, std::vector<ip_address>{ip("2606:4700:4700::1111")});
}

TEST(CheckTarget, LiteralIgnoresTheResolverAnswer) {
  // Whatever a resolver made of "127.1", the literal itself decides.
  const auto d = check_target("127.1", {ip("8.8.8.8")}, false);
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.addresses.empty());
  EXPECT_EQ(d.reason, "refused: 127.1 is 127.0.0.1 (loopback)");
}

TEST(CheckTarget, LegacyLoopbackSpellingsAreRefused) {
  for (const char* host : {"2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001",
                           "[::ffff:7f00:1]", "[::ffff:127.0.0.1]", "[::1]", "0"}) {
    const auto d = check_target(host, {ip("93.184.216.34")}, false);
    EXPECT_FALSE(d.allowed) << host;
    EXPECT_NE(d.reason.find(host), std::string::npos) << d.reason;
  }
}

TEST(CheckTarget, InvalidNumericHostsAreRefusedNotResolved) {
  for (const char* host :
       {"1.2.3.4.5", "256.0.0.1", "foo.123", "[fe80::1%eth0]", "fe80::1%eth0", "[::1"}) {
    const auto d = check_target(host, {ip("93.184.216.34")}, false);
    EXPECT_FALSE(d.allowed) << host;
    EXPECT_NE(d.reason.find("not a valid"), std::string::npos) << d.reason;
  }
}

TEST(CheckTarget, NameResolvingToPublicAddressesIsAllowed) {
  const auto d = check_target(
      "example.com", {ip("93.184.216.34"), ip("2606:2800:220:1:248:1893:25c8:1946")}, false);
  EXPECT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.addresses, (std::vector<ip_address>{ip("93.184.216.34"),
                                                  ip("2606:2800:220:1:248:1893:25c8:1946")}));
  EXPECT_TRUE(d.reason.empty());
}

TEST(CheckTarget, DuplicatesAreReturnedOnce) {
  const auto d = check_target("example.com", {ip("1.1.1.1"), ip("8.8.8.8"), ip("1.1.1.1")}, false);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.addresses, (std::vector<ip_address>{ip("1.1.1.1"), ip("8.8.8.8")}));
}

TEST(CheckTarget, AnyPrivateAddressRefusesTheName) {
  const auto d = check_target("example.test", {ip("93.184.216.34"), ip("10.0.0.1")}, false);
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.addresses.empty());
  EXPECT_EQ(d.reason, "refused: example.test resolves to 10.0.0.1 (private-use)");

  const auto mapped =
      check_target("rebind.test", {ip("1.1.1.1"), ip("::ffff:169.254.169.254")}, false);
  EXPECT_FALSE(mapped.allowed);
  EXPECT_EQ(mapped.reason, "refused: rebind.test resolves to ::ffff:169.254.169.254 (link-local)");
}

TEST(CheckTarget, EmptyResolutionIsRefused) {
  const auto d = check_target("nxdomain.test", {}, false);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "refused: nxdomain.test did not resolve to any address");
  EXPECT_FALSE(check_target("nxdomain.test", {}, true).allowed);
  EXPECT_FALSE(check_target("", {ip("8.8.8.8")}, false).allowed);
}

TEST(CheckTarget, AllowPrivateLetsLocalTargetsThrough) {
  EXPECT_TRUE(check_target("127.0.0.1", {}, true).allowed);
  EXPECT_TRUE(check_target("[::1]", {}, true).allowed);
  const auto d = check_target("localhost", {ip("127.0.0.1"), ip("::1")}, true);
  EXPECT_TRUE(d.allowed) << d.reason;
  EXPECT_EQ(d.addresses, (std::vector<ip_address>{ip("127.0.0.1"), ip("::1")}));
  EXPECT_TRUE(check_target("db.internal", {ip("10.1.2.3"), ip("fd00::5")}, true).allowed);
  // ...but never to something that cannot be a unicast peer.
  EXPECT_FALSE(check_target("224.0.0.1", {}, true).allowed);
  EXPECT_FALSE(check_target("255.255.255.255", {}, true).allowed);
  EXPECT_FALSE(check_target("0.0.0.0", {}, true).allowed);
  EXPECT_FALSE(check_target("weird.test", {ip("127.0.0.1"), ip("[::]")}, true).allowed);
  // Without the flag, loopback is refused.
  EXPECT_FALSE(check_target("localhost", {ip("127.0.0.1")}, false).allowed);
}

TEST(AddressGuard, ClassNames) {
  EXPECT_EQ(to_string(address_class::public_unicast), "public-unicast");
  EXPECT_EQ(to_string(address_class::private_use), "private-use");
  EXPECT_EQ(to_string(address_class::shared_cgnat), "shared-cgnat");
  EXPECT_EQ(to_string(address_class::link_local), "link-local");
  EXPECT_EQ(to_string(address_class::teredo), "teredo");
}

}  // namespace
}  // namespace hookd
