#include "xbb/planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace xbb {
namespace {

const std::string kXen = "/nix/store/ffff-xen-4.17.7-boot/boot/xen-4.17.efi";

Generation generation(const std::string& rest, unsigned number, bool xen = true) {
  Generation g;
  g.rest = rest;
  g.number = number;
  g.source = "loader/entries/nixos-" + rest + ".conf";
  g.entry.title = "NixOS";
  g.entry.version = "Generation " + std::to_string(number) + " NixOS 25.11";
  g.entry.machine_id = "4098b3f648d74c13b1f04ccfba7798e8";
  g.entry.sort_key = "nixos";
  g.entry.kernel = "/EFI/nixos/dddd-linux-6.12.7-bzImage.efi";
  g.entry.initrds = {"/EFI/nixos/bbbb-initrd-linux-6.12.7-initrd.efi"};
  Bootspec spec;
  spec.init = "/nix/store/aaaa-nixos-system/init";
  spec.kernel = "/nix/store/dddd-linux-6.12.7/bzImage";
  spec.kernel_params = {"loglevel=4", "gen=" + std::to_string(number)};
  if (xen) spec.xen = XenExtension{2, kXen, {"dom0_mem=4096M", "console=com1"}, {}, {}};
  g.bootspec = spec;
  g.xen_efi = "/host" + kXen;
  return g;
}

const FileWrite* find(const std::vector<FileWrite>& files, const std::string& path) {
  auto it = std::find_if(files.begin(), files.end(), [&](const FileWrite& f) { return f.path == path; });
  return it == files.end() ? nullptr : &*it;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

Planned plan(const std::vector<Generation>& gens, const EspState& state = {},
             const std::map<std::string, std::string>& configs = {}, bool retarget = true) {
  return make_plan(gens, state, configs, PlanOptions{retarget});
}

TEST(Planner, WritesEntryAndUnifiedImageForAXenGeneration) {
  auto result = plan({generation("generation-42", 42)});
  const FileWrite* entry = find(result.plan.entries, "loader/entries/xen-generation-42.conf");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(std::get<std::string>(entry->content),
            "title NixOS (with Xen Hypervisor)\n"
            "version Generation 42 NixOS 25.11\n"
            "efi /EFI/xen/xen-generation-42.efi\n"
            "machine-id 4098b3f648d74c13b1f04ccfba7798e8\n"
            "sort-key nixos\n");
  const FileWrite* image = find(result.plan.images, "EFI/xen/xen-generation-42.efi");
  ASSERT_NE(image, nullptr);
  const auto& recipe = std::get<ImageRecipe>(image->content);
  EXPECT_EQ(recipe.xen_efi, "/host" + kXen);
  ASSERT_EQ(recipe.sections.size(), 1u);
  EXPECT_EQ(recipe.sections[0].name, ".config");
  EXPECT_EQ(std::get<std::string>(recipe.sections[0].content),
            "[global]\ndefault=nixos\n\n[nixos]\n"
            "options=dom0_mem=4096M console=com1\n"
            "kernel=\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi "
            "init=/nix/store/aaaa-nixos-system/init loglevel=4 gen=42\n"
            "ramdisk=\\EFI\\nixos\\bbbb-initrd-linux-6.12.7-initrd.efi\n");
  ASSERT_EQ(result.plan.changes.size(), 1u);
  EXPECT_EQ(result.plan.changes[0].kind, '+');
  EXPECT_EQ(result.plan.changes[0].name, "xen-generation-42");
}

TEST(Planner, OmitsAbsentMachineIdAndSortKey) {
  auto g = generation("generation-1", 1);
  g.entry.machine_id.reset();
  g.entry.sort_key.reset();
  auto result = plan({g});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(std::get<std::string>(result.plan.entries[0].content),
            "title NixOS (with Xen Hypervisor)\nversion Generation 1 NixOS 25.11\n"
            "efi /EFI/xen/xen-generation-1.efi\n");
}

TEST(Planner, GivesNoEntryToAGenerationWithoutXen) {
  auto result = plan({generation("generation-1", 1, false), generation("generation-2", 2)});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-generation-2.conf");
  EXPECT_FALSE(result.default_failure);
}

TEST(Planner, RemovesStaleEntriesImagesAndLegacyImages) {
  EspState state;
  state.xen_entries["loader/entries/xen-generation-1.conf"] = "title old\nefi /EFI/xen/xen-generation-1.efi\n";
  state.xen_images = {"EFI/xen/xen-generation-1.efi", "EFI/xen/xen-generation-2.efi"};
  state.legacy_images = {"EFI/nixos/xen-generation-2.efi"};
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_TRUE(contains(result.plan.removals, "loader/entries/xen-generation-1.conf"));
  EXPECT_TRUE(contains(result.plan.removals, "EFI/xen/xen-generation-1.efi"));
  EXPECT_TRUE(contains(result.plan.removals, "EFI/nixos/xen-generation-2.efi"));
  EXPECT_FALSE(contains(result.plan.removals, "EFI/xen/xen-generation-2.efi"));
  bool removal_reported = std::any_of(result.plan.changes.begin(), result.plan.changes.end(),
                                      [](const Change& c) { return c.kind == '-' && c.name == "xen-generation-1"; });
  EXPECT_TRUE(removal_reported);
}

TEST(Planner, KeepsTheExistingEntryOfAGenerationWhoseBootspecBroke) {
  auto broken = generation("generation-1", 1);
  broken.bootspec.reset();
  broken.problem = "/nix/store/x/boot.json: cannot open";
  EspState state;
  state.xen_entries["loader/entries/xen-generation-1.conf"] =
      "title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-1.efi\n";
  state.xen_images = {"EFI/xen/xen-generation-1.efi"};
  auto result = plan({broken, generation("generation-2", 2)}, state);
  EXPECT_TRUE(result.plan.removals.empty());
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("nixos-generation-1"), std::string::npos);
  EXPECT_NE(result.warnings[0].find("cannot open"), std::string::npos);
  EXPECT_FALSE(result.default_failure);
}

TEST(Planner, FailsWhenTheDefaultGenerationGetsNoEntry) {
  auto broken = generation("generation-2", 2);
  broken.bootspec.reset();
  broken.problem = "broken";
  auto result = plan({generation("generation-1", 1), broken});
  ASSERT_TRUE(result.default_failure);
  EXPECT_EQ(*result.default_failure, "nixos-generation-2");

  EspState state;
  state.loader_conf = "timeout 5\ndefault nixos-generation-1.conf\n";
  EXPECT_FALSE(plan({generation("generation-1", 1), broken}, state).default_failure);
}

TEST(Planner, RefusesAParameterThatWouldInjectAConfigLine) {
  auto hostile = generation("generation-3", 3);
  hostile.bootspec->xen->params.push_back("x\nkernel=evil");
  EspState state;
  state.loader_conf = "default nixos-generation-2.conf\n";
  auto result = plan({generation("generation-2", 2), hostile}, state);
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-generation-2.conf");
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("nixos-generation-3"), std::string::npos);
}

TEST(Planner, RetargetsDefaultAndPreferredOnlyToXenEntriesThatWillExist) {
  EspState state;
  state.loader_conf =
      "timeout 5\npreferred nixos-generation-2.conf\ndefault nixos-generation-1.conf\n";
  auto result = plan({generation("generation-1", 1, false), generation("generation-2", 2)}, state);
  ASSERT_TRUE(result.plan.loader_conf);
  EXPECT_EQ(*result.plan.loader_conf,
            "timeout 5\npreferred xen-generation-2.conf\ndefault nixos-generation-1.conf\n");
}

TEST(Planner, RetargetsAGlobDefaultWhenAXenEntryMatches) {
  EspState state;
  state.loader_conf = "default nixos-*\r\n";
  auto result = plan({generation("generation-2", 2)}, state);
  ASSERT_TRUE(result.plan.loader_conf);
  EXPECT_EQ(*result.plan.loader_conf, "default xen-*\r\n");
  EXPECT_FALSE(plan({generation("generation-2", 2, false)}, state).plan.loader_conf);
}

TEST(Planner, LeavesLoaderConfAloneWithNoDefault) {
  EspState state;
  state.loader_conf = "default nixos-generation-2.conf\n";
  EXPECT_FALSE(plan({generation("generation-2", 2)}, state, {}, false).plan.loader_conf);
}

TEST(Planner, StartsANewCountedEntryWithAllTheSourceTries) {
  auto g = generation("abc", 7);
  g.counter = BootCounter{2, 1};
  auto result = plan({g});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-abc+3.conf");
}

TEST(Planner, KeepsTheCounterOfAnUnchangedCountedEntry) {
  auto g = generation("abc", 7);
  g.counter = BootCounter{3, std::nullopt};
  Planned first = plan({g});
  EspState state;
  state.xen_entries["loader/entries/xen-abc+1-2.conf"] =
      std::get<std::string>(first.plan.entries[0].content);
  state.xen_images = {"EFI/xen/xen-abc.efi"};
  std::map<std::string, std::string> configs{
      {"EFI/xen/xen-abc.efi", std::get<std::string>(
                                  std::get<ImageRecipe>(first.plan.images[0].content).sections[0].content)}};
  auto result = plan({g}, state, configs);
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-abc+1-2.conf");
  EXPECT_TRUE(result.plan.removals.empty());
  EXPECT_TRUE(result.plan.changes.empty());
}

TEST(Planner, ReportsWhichFieldsOfAChangedEntryChanged) {
  auto before = generation("generation-5", 5);
  Planned first = plan({before});
  EspState state;
  state.xen_entries["loader/entries/xen-generation-5.conf"] =
      std::get<std::string>(first.plan.entries[0].content);
  state.xen_images = {"EFI/xen/xen-generation-5.efi"};
  std::map<std::string, std::string> configs{
      {"EFI/xen/xen-generation-5.efi",
       std::get<std::string>(std::get<ImageRecipe>(first.plan.images[0].content).sections[0].content)}};
  EXPECT_TRUE(plan({before}, state, configs).plan.changes.empty());

  auto after = before;
  after.bootspec->xen->params = {"dom0_mem=2048M"};
  after.entry.version = "Generation 5 NixOS 26.05";
  auto result = plan({after}, state, configs);
  ASSERT_EQ(result.plan.changes.size(), 1u);
  EXPECT_EQ(result.plan.changes[0].kind, '~');
  EXPECT_EQ(result.plan.changes[0].detail, "version, xen options");
}

TEST(Planner, WarnsAboutInitrdsXenCannotLoad) {
  auto g = generation("generation-1", 1);
  g.entry.initrds.push_back("/EFI/nixos/extra-initrd.efi");
  auto result = plan({g});
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("/EFI/nixos/extra-initrd.efi"), std::string::npos);
}

TEST(Planner, EmbedsKernelAndInitrdForProfileGenerations) {
  auto g = generation("generation-4", 4);
  g.embed_kernel = true;
  g.kernel_file = "/host/nix/store/dddd-linux-6.12.7/bzImage";
  g.initrd_file = "/host/nix/store/bbbb-initrd/initrd";
  auto result = plan({g});
  ASSERT_EQ(result.plan.images.size(), 1u);
  const auto& recipe = std::get<ImageRecipe>(result.plan.images[0].content);
  ASSERT_EQ(recipe.sections.size(), 3u);
  EXPECT_EQ(recipe.sections[1].name, ".kernel");
  EXPECT_EQ(std::get<std::filesystem::path>(recipe.sections[1].content), g.kernel_file);
  EXPECT_EQ(recipe.sections[2].name, ".ramdisk");
  EXPECT_EQ(std::get<std::string>(recipe.sections[0].content),
            "[global]\ndefault=nixos\n\n[nixos]\noptions=dom0_mem=4096M console=com1\n"
            "kernel=bzImage init=/nix/store/aaaa-nixos-system/init loglevel=4 gen=4\n");
}

}  // namespace
}  // namespace xbb
