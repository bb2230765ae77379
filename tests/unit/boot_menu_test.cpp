#include "xbb/boot_menu.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace xbb {
namespace {

int sign(int value) { return (value > 0) - (value < 0); }

// The order the UAPI version format specification documents, oldest first.
TEST(CompareVersions, FollowsTheDocumentedOrder) {
  const std::vector<std::string> ordered = {"122.1",   "123~rc1-1", "123",     "123-a",
                                            "123-a.1", "123-1",     "123-1.1", "123^post1",
                                            "123.a-1", "123.1-1",   "123a-1",  "124-1"};
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    for (std::size_t j = 0; j < ordered.size(); ++j) {
      EXPECT_EQ(sign(compare_versions(ordered[i], ordered[j])),
                sign(static_cast<int>(i) - static_cast<int>(j)))
          << ordered[i] << " vs " << ordered[j];
    }
  }
}

TEST(CompareVersions, ComparesNumbersByValueAndIgnoresOtherCharacters) {
  EXPECT_LT(compare_versions("Generation 9 NixOS", "Generation 10 NixOS"), 0);
  EXPECT_EQ(compare_versions("00123", "123"), 0);
  EXPECT_EQ(compare_versions("123_a", "123a"), 0);
  EXPECT_GT(compare_versions("abcde", "abc"), 0);
  EXPECT_LT(compare_versions("", "1"), 0);
  EXPECT_EQ(compare_versions("", ""), 0);
  EXPECT_LT(compare_versions("1~", "1"), 0);
}

MenuEntry entry(const std::string& file, const std::string& version,
                std::optional<std::string> sort_key = "nixos") {
  auto name = parse_entry_name(file);
  LoaderEntry loader;
  loader.version = version;
  loader.sort_key = std::move(sort_key);
  loader.machine_id = "4098b3f648d74c13b1f04ccfba7798e8";
  return menu_entry(*name, loader);
}

std::vector<std::string> in_menu_order(std::vector<MenuEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(), boots_before);
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.file_name);
  return names;
}

TEST(BootMenu, NewestVersionFirstAmongTheSameSortKey) {
  EXPECT_EQ(in_menu_order({entry("nixos-aaa.conf", "Generation 9 NixOS"),
                           entry("nixos-bbb.conf", "Generation 10 NixOS"),
                           entry("nixos-ccc.conf", "Generation 2 NixOS")}),
            (std::vector<std::string>{"nixos-bbb.conf", "nixos-aaa.conf", "nixos-ccc.conf"}));
}

TEST(BootMenu, SortKeyFirstThenEntriesWithoutOneByNameNewestFirst) {
  EXPECT_EQ(
      in_menu_order({entry("zz-2.conf", "1", std::nullopt), entry("zz-10.conf", "1", std::nullopt),
                     entry("b.conf", "1", "b"), entry("a.conf", "1", "a")}),
      (std::vector<std::string>{"a.conf", "b.conf", "zz-10.conf", "zz-2.conf"}));
}

TEST(BootMenu, EntriesWithNoTriesLeftGoLast) {
  EXPECT_EQ(in_menu_order({entry("nixos-new+0-3.conf", "Generation 3"),
                           entry("nixos-old+1-2.conf", "Generation 2")}),
            (std::vector<std::string>{"nixos-old+1-2.conf", "nixos-new+0-3.conf"}));
}

TEST(BootMenu, PickTakesTheFirstMatchInMenuOrder) {
  std::vector<MenuEntry> menu = {entry("nixos-generation-1.conf", "Generation 1"),
                                 entry("nixos-generation-2.conf", "Generation 2"),
                                 entry("xen-generation-2.conf", "Generation 2", "aaa")};
  EXPECT_EQ(pick("nixos-*", menu), 1u);
  EXPECT_EQ(pick("NIXOS-generation-1.conf", menu), 0u) << "systemd-boot folds case";
  EXPECT_EQ(pick("*", menu), 2u);
  EXPECT_EQ(first_in_menu(menu), 2u);
  EXPECT_EQ(pick("other-*", menu), std::nullopt);
  EXPECT_EQ(first_in_menu({}), std::nullopt);
}

TEST(BootMenu, ANameSelectsItsCountedFile) {
  MenuEntry counted = entry("nixos-abc+2-1.conf", "Generation 1");
  EXPECT_TRUE(selects("nixos-abc.conf", counted));
  EXPECT_TRUE(selects("nixos-abc+2-1.conf", counted));
  EXPECT_FALSE(selects("nixos-ab.conf", counted));
}

}  // namespace
}  // namespace xbb
