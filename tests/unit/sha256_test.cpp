// SHA-256 through libcrypto loaded when first needed (issue 18, startup):
// the digests are the standard's, in one piece or streamed, and the first
// use may come from several threads at once.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "xbb/digest.hpp"

namespace xbb {
namespace {

// FIPS 180-2's examples.
constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(Sha256, KnownDigestsWholeAndStreamed) {
  EXPECT_EQ(sha256_hex(""), kEmpty);
  EXPECT_EQ(sha256_hex("abc"), kAbc);
  EXPECT_EQ(Sha256().update("a").update("").update("bc").hex(), kAbc);
  Sha256Sink sink;
  const std::uint8_t bytes[] = {'a', 'b', 'c'};
  sink.write(bytes);
  EXPECT_EQ(sink.size(), 3u);
  EXPECT_EQ(sink.hex(), kAbc);
}

TEST(Sha256, DigestsFromManyThreadsAgree) {
  std::vector<std::string> digests(8);
  {
    std::vector<std::jthread> threads;
    for (auto& digest : digests) threads.emplace_back([&digest] { digest = sha256_hex("abc"); });
  }
  for (const auto& digest : digests) EXPECT_EQ(digest, kAbc);
}

}  // namespace
}  // namespace xbb
