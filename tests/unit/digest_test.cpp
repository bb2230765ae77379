// The hashes of digest.hpp: XXH3-128 against xxHash's reference values.
#include "xbb/digest.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace xbb {
namespace {

std::span<const std::uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

TEST(Xxh3, GivesXxHashsCanonicalXxh3_128AsHex) {
  EXPECT_EQ(Xxh3().hex(), "99aa06d3014798d86001c324468d497f");
  EXPECT_EQ(Xxh3().update(bytes_of("abc")).hex(), "06b05ab6733a618578af5f94892f3950");
}

TEST(Xxh3, BytesGivenInPiecesHashAsGivenAtOnce) {
  std::string bytes;
  for (int i = 0; i < 100000; ++i) bytes += static_cast<char>(i * 131 % 251);
  const std::string whole = Xxh3().update(bytes_of(bytes)).hex();
  for (const std::size_t piece : {std::size_t{1}, std::size_t{63}, std::size_t{4096}}) {
    Xxh3 hash;
    for (std::size_t at = 0; at < bytes.size(); at += piece)
      hash.update(bytes_of(std::string_view(bytes).substr(at, piece)));
    EXPECT_EQ(hash.hex(), whole) << "pieces of " << piece;
  }
  EXPECT_NE(Xxh3().update(bytes_of(bytes.substr(1))).hex(), whole);
}

}  // namespace
}  // namespace xbb
