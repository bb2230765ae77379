// The committed seed corpus of the pe_fuzz target is exactly what the
// synthetic-PE builder makes, so it can be regenerated and reviewed.
#include <gtest/gtest.h>

#include <filesystem>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/pe.hpp"

namespace {

TEST(PeFuzzCorpus, SeedsAreTheBuilderImages) {
  const std::filesystem::path corpus =
      std::filesystem::path(XBB_SOURCE_DIR) / "fixtures/corpus/pe_fuzz";
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(corpus))
    files += entry.is_regular_file();
  const auto seeds = xbb::test::fuzz_seeds();
  EXPECT_EQ(files, seeds.size());
  for (const auto& [name, bytes] : seeds) {
    EXPECT_TRUE(xbb::test::read_binary(corpus / name) == bytes) << name;
  }
}

TEST(PeFuzzCorpus, SeedsReachAddSections) {
  std::size_t added = 0;
  for (const auto& [name, bytes] : xbb::test::fuzz_seeds()) {
    if (name == "pe32.efi") continue;
    const auto result = xbb::pe::add_sections(bytes, {{".config", {'x'}}});
    EXPECT_EQ(result.warnings.size(), name == "signed.efi" ? 1u : 0u) << name;
    ++added;
  }
  EXPECT_EQ(added, 7u);
}

}  // namespace
