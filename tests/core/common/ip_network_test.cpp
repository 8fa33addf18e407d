#include "core/common/ip_network.hpp"

#include <gtest/gtest.h>

namespace hookd {
namespace {

ip_network net(std::string_view text) {
  auto parsed = parse_ip_network(text);
  if (auto* problem = std::get_if<std::string>(&parsed)) {
    ADD_FAILURE() << text << ": " << *problem;
    return {};
  }
  return std::get<ip_network>(parsed);
}

ip_address addr(std::string_view text) {
  return net(text).base;  // a single address parses as its /32 or /128
}

std::string error_of(std::string_view text) {
  auto parsed = parse_ip_network(text);
  const auto* problem = std::get_if<std::string>(&parsed);
  EXPECT_NE(problem, nullptr) << text << " parsed as " << std::get<ip_network>(parsed).to_string();
  return problem != nullptr ? *problem : std::string();
}

TEST(IpNetwork, ParsesCidrAndSingleAddresses) {
  EXPECT_EQ(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(net("192.0.2.7").to_string(), "192.0.2.7/32");
  EXPECT_EQ(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(net("2001:DB8::/32").to_string(), "2001:db8::/32");
  EXPECT_EQ(net("::1").to_string(), "::1/128");
  EXPECT_EQ(net("fe80::/10").prefix_length, 10u);
}

TEST(IpNetwork, RefusesWhatAStrictParserRefuses) {
  for (const auto* bad :
       {"", "10.0.0", "127.1", "0177.0.0.1", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/8x", "256.0.0.1",
        "::1%eth0", "example.com", "[::1]", "1.2.3.4 /8"}) {
    EXPECT_FALSE(error_of(bad).empty()) << bad;
  }
  EXPECT_NE(error_of("10.0.0.0/33").find("0..32"), std::string::npos);
  EXPECT_NE(error_of("::/129").find("0..128"), std::string::npos);
  // Host bits set: a typo would otherwise shift or widen the network silently.
  EXPECT_NE(error_of("10.1.2.3/8").find("did you mean 10.0.0.0/8"), std::string::npos);
  EXPECT_NE(error_of("2001:db8::1/32").find("did you mean 2001:db8::/32"), std::string::npos);
}

TEST(IpNetwork, ContainsByPrefixAndIpv4MappedPeers) {
  const auto ten = net("10.0.0.0/8");
  EXPECT_TRUE(ten.contains(addr("10.255.1.2")));
  EXPECT_FALSE(ten.contains(addr("11.0.0.1")));
  EXPECT_TRUE(ten.contains(addr("::ffff:10.1.2.3")));  // a dual-stack listener's view of it
  EXPECT_FALSE(ten.contains(addr("::ffff:11.1.2.3")));
  EXPECT_FALSE(ten.contains(addr("::a01:203")));  // IPv4-compatible is not mapped

  const auto odd = net("192.168.1.128/25");
  EXPECT_TRUE(odd.contains(addr("192.168.1.200")));
  EXPECT_FALSE(odd.contains(addr("192.168.1.127")));

  const auto v6 = net("2001:db8:abcd::/48");
  EXPECT_TRUE(v6.contains(addr("2001:db8:abcd:ffff::1")));
  EXPECT_FALSE(v6.contains(addr("2001:db8:abce::1")));
  EXPECT_FALSE(v6.contains(addr("10.0.0.1")));
  EXPECT_TRUE(net("::/0").contains(addr("2001:db8::1")));
  EXPECT_TRUE(net("0.0.0.0/0").contains(addr("203.0.113.9")));
  EXPECT_FALSE(net("::1").contains(addr("127.0.0.1")));
}

TEST(IpNetwork, Lists) {
  auto parsed = parse_ip_network_list(" 10.0.0.0/8 , ::1,192.0.2.7 ");
  ASSERT_TRUE(std::holds_alternative<std::vector<ip_network>>(parsed));
  const auto& list = std::get<std::vector<ip_network>>(parsed);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_TRUE(contains_any(list, addr("10.9.8.7")));
  EXPECT_TRUE(contains_any(list, addr("::1")));
  EXPECT_FALSE(contains_any(list, addr("127.0.0.1")));
  EXPECT_TRUE(std::get<std::vector<ip_network>>(parse_ip_network_list("")).empty());
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_ip_network_list("10.0.0.0/8,")));
  EXPECT_TRUE(std::holds_alternative<std::string>(parse_ip_network_list("10.0.0.0/8,nope")));
}

}  // namespace
}  // namespace hookd
