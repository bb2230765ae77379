#include "xbb/planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "xbb/layout.hpp"

namespace xbb {
namespace {

const std::string kXen = "/nix/store/ffff-xen-4.17.7-boot/boot/xen-4.17.efi";
const std::string kKernel = "EFI/nixos/dddd-linux-6.12.7-bzImage.efi";
const std::string kInitrd = "EFI/nixos/bbbb-initrd-linux-6.12.7-initrd.efi";
const std::string kMarker(layout::kMarker);

Generation generation(const std::string& rest, unsigned number, bool xen = true) {
  Generation g;
  g.rest = rest;
  g.number = number;
  g.source = "loader/entries/nixos-" + rest + ".conf";
  g.entry.title = "NixOS";
  g.entry.version = "Generation " + std::to_string(number) + " NixOS 25.11";
  g.entry.machine_id = "4098b3f648d74c13b1f04ccfba7798e8";
  g.entry.sort_key = "nixos";
  g.entry.kernel = "/" + kKernel;
  g.entry.initrds = {"/" + kInitrd};
  Bootspec spec;
  spec.init = "/nix/store/aaaa-nixos-system/init";
  spec.kernel = "/nix/store/dddd-linux-6.12.7/bzImage";
  spec.kernel_params = {"loglevel=4", "gen=" + std::to_string(number)};
  if (xen) spec.xen = XenExtension{2, kXen, {"dom0_mem=4096M", "console=com1"}, {}, {}};
  g.bootspec = spec;
  g.xen_efi = HostFile{"/host" + kXen, {2867200, 1700000000000000000}, {}};
  g.shared_digest = "3fa9c2d1" + std::string(56, 'e');
  return g;
}

// A generation whose bootspec could not be read.
Generation broken(const std::string& rest, unsigned number) {
  Generation g = generation(rest, number);
  g.bootspec.reset();
  g.problem = "/nix/store/x/boot.json: cannot open";
  return g;
}

// An ESP where the source entries' kernel and initrd are present.
EspState esp(std::optional<std::string> loader_conf = std::nullopt) {
  EspState state;
  state.boot_files = {kKernel, kInitrd};
  state.loader_conf = std::move(loader_conf);
  return state;
}

const FileStamp kStamp{100, 1700000000000000000};

ExistingFile ours(const std::string& text) {
  return {kMarker + "\n" + text, true, kStamp, std::nullopt, std::nullopt, std::nullopt};
}
ExistingFile by_hand(const std::string& text) {
  return {text, false, kStamp, std::nullopt, std::nullopt, std::nullopt};
}
ExistingFile symlink() {
  return {"", true, std::nullopt, std::nullopt, std::nullopt, std::nullopt};
}

const FileWrite* find(const std::vector<FileWrite>& files, const std::string& path) {
  auto it =
      std::find_if(files.begin(), files.end(), [&](const FileWrite& f) { return f.path == path; });
  return it == files.end() ? nullptr : &*it;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

PlanOptions options_for(layout::Kind kind, bool retarget = true, bool keep_debug = false) {
  PlanOptions options;
  options.retarget_default = retarget;
  options.layout.kind = kind;
  options.keep_debug_sections = keep_debug;
  return options;
}

Planned plan(const std::vector<Generation>& gens, const EspState& state = esp(),
             bool retarget = true) {
  return make_plan(gens, state, options_for(layout::Kind::unified, retarget, false));
}

Planned plan_shared(const std::vector<Generation>& gens, const EspState& state = esp()) {
  return make_plan(gens, state, options_for(layout::Kind::shared, true, false));
}

std::string config_of(const FileWrite& image) {
  return std::get<std::string>(std::get<ImageRecipe>(image.content).sections[0].content);
}

// The state a run that applied `first` leaves behind, as the next run reads
// it: its texts, and its images as the record vouches for them.
EspState after(const Planned& first, EspState state = esp()) {
  for (const auto& entry : first.plan.entries) {
    state.xen_entries[entry.path] = {std::get<std::string>(entry.content),
                                     true,
                                     kStamp,
                                     std::nullopt,
                                     std::nullopt,
                                     std::nullopt};
  }
  for (const auto& file : first.plan.images) {
    if (const auto* text = std::get_if<std::string>(&file.content)) {
      state.xen_images[file.path] = {*text, true, kStamp, std::nullopt, std::nullopt, std::nullopt};
    }
  }
  for (const auto& [path, origin] : first.plan.images_after) {
    state.xen_images[path] = {origin.config,        true,          kStamp,
                              std::string(32, 'd'), origin.recipe, std::nullopt};
  }
  if (first.plan.loader_conf) state.loader_conf = first.plan.loader_conf;
  return state;
}

TEST(Planner, WritesEntryAndUnifiedImageForAXenGeneration) {
  auto result = plan({generation("generation-42", 42)});
  const FileWrite* entry = find(result.plan.entries, "loader/entries/xen-generation-42.conf");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(std::get<std::string>(entry->content),
            kMarker +
                "\n"
                "title NixOS (with Xen Hypervisor)\n"
                "version Generation 42 NixOS 25.11\n"
                "efi /EFI/xen/xen-generation-42.efi\n"
                "machine-id 4098b3f648d74c13b1f04ccfba7798e8\n"
                "sort-key nixos\n");
  const FileWrite* image = find(result.plan.images, "EFI/xen/xen-generation-42.efi");
  ASSERT_NE(image, nullptr);
  const auto& recipe = std::get<ImageRecipe>(image->content);
  EXPECT_EQ(recipe.xen_efi.path, "/host" + kXen);
  EXPECT_TRUE(recipe.drop_debug_sections);
  ASSERT_EQ(recipe.sections.size(), 1u);
  EXPECT_EQ(recipe.sections[0].name, ".config");
  EXPECT_EQ(config_of(*image), kMarker +
                                   "\n[global]\ndefault=nixos\n\n[nixos]\n"
                                   "options=dom0_mem=4096M console=com1\n"
                                   "kernel=\\EFI\\nixos\\dddd-linux-6.12.7-bzImage.efi "
                                   "init=/nix/store/aaaa-nixos-system/init loglevel=4 gen=42\n"
                                   "ramdisk=\\EFI\\nixos\\bbbb-initrd-linux-6.12.7-initrd.efi\n");
  ASSERT_EQ(result.plan.changes.size(), 1u);
  EXPECT_EQ(result.plan.changes[0].kind, '+');
  EXPECT_EQ(result.plan.changes[0].name, "xen-generation-42");
  EXPECT_TRUE(result.warnings.empty());
}

// What a plan writes and says, but its notes, as one comparable text.
std::string plan_text(const Planned& planned) {
  std::string text;
  for (const auto* files : {&planned.plan.images, &planned.plan.entries}) {
    for (const auto& file : *files) {
      const auto* content = std::get_if<std::string>(&file.content);
      text +=
          file.path + "\n" + (content ? *content : recipe_id(std::get<ImageRecipe>(file.content)));
    }
  }
  for (const auto& [path, content] : planned.plan.texts_after) text += path + "\n" + content;
  for (const auto& [path, origin] : planned.plan.images_after)
    text += path + "\n" + origin.recipe + origin.config;
  for (const auto& change : planned.plan.changes) text += change.kind + change.name + change.detail;
  for (const auto& path : planned.plan.removals) text += path + "\n";
  for (const auto& warning : planned.warnings) text += warning + "\n";
  for (const auto& outcome : planned.generations)
    text += outcome.label + outcome.reason + outcome.entry.value_or("") + outcome.layout;
  return text + planned.plan.loader_conf.value_or("") + planned.default_failure.value_or("");
}

TEST(Planner, PlansTheSameWithoutNotes) {
  EspState state = esp("default nixos-generation-2.conf\n");
  state.xen_entries["loader/entries/xen-generation-1.conf"] = ours("title old\n");
  const std::vector<Generation> gens = {generation("generation-1", 1, false),
                                        generation("generation-2", 2), broken("generation-3", 3)};
  PlanOptions options = options_for(layout::Kind::shared);
  const Planned with_notes = make_plan(gens, state, options);
  options.notes = false;
  const Planned without = make_plan(gens, state, options);
  EXPECT_FALSE(with_notes.notes.empty());
  EXPECT_TRUE(without.notes.empty());
  EXPECT_EQ(plan_text(without), plan_text(with_notes));
  EXPECT_FALSE(with_notes.plan.entries.empty());
}

TEST(Planner, OmitsAbsentMachineIdAndSortKey) {
  auto g = generation("generation-1", 1);
  g.entry.machine_id.reset();
  g.entry.sort_key.reset();
  auto result = plan({g});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(std::get<std::string>(result.plan.entries[0].content),
            kMarker +
                "\ntitle NixOS (with Xen Hypervisor)\nversion Generation 1 NixOS 25.11\n"
                "efi /EFI/xen/xen-generation-1.efi\n");
}

TEST(Planner, GivesNoEntryToAGenerationWithoutXen) {
  auto result = plan({generation("generation-1", 1, false), generation("generation-2", 2)});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-generation-2.conf");
  EXPECT_FALSE(result.default_failure);
}

TEST(Planner, RemovesItsOwnStaleEntriesImagesAndTheScriptsImages) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-generation-1.conf"] =
      ours("title old\nefi /EFI/xen/xen-generation-1.efi\n");
  state.xen_images["EFI/xen/xen-generation-1.efi"] = ours("[global]\n");
  state.xen_images["EFI/xen/xen-generation-2.efi"] = ours("[global]\n");
  state.legacy_images = {"EFI/nixos/xen-generation-2.efi"};
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_TRUE(contains(result.plan.removals, "loader/entries/xen-generation-1.conf"));
  EXPECT_TRUE(contains(result.plan.removals, "EFI/xen/xen-generation-1.efi"));
  EXPECT_TRUE(contains(result.plan.removals, "EFI/nixos/xen-generation-2.efi"));
  EXPECT_FALSE(contains(result.plan.removals, "EFI/xen/xen-generation-2.efi"));
  bool removal_reported =
      std::any_of(result.plan.changes.begin(), result.plan.changes.end(),
                  [](const Change& c) { return c.kind == '-' && c.name == "xen-generation-1"; });
  EXPECT_TRUE(removal_reported);
  EXPECT_TRUE(result.warnings.empty());
}

TEST(Planner, LeavesHandMadeFilesAloneWithOneWarning) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-custom.conf"] =
      by_hand("title mine\nefi /EFI/xen/my-xen.efi\n");
  state.xen_images["EFI/xen/my-xen.efi"] = by_hand("");
  state.xen_images["EFI/xen/my.cfg"] = by_hand("[global]\n");
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_FALSE(contains(result.plan.removals, "loader/entries/xen-custom.conf"));
  EXPECT_FALSE(contains(result.plan.removals, "EFI/xen/my-xen.efi"));
  EXPECT_FALSE(contains(result.plan.removals, "EFI/xen/my.cfg"));
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_EQ(
      result.warnings[0],
      "left alone 3 file(s) that xen-boot-builder did not write: loader/entries/xen-custom.conf, "
      "EFI/xen/my-xen.efi, EFI/xen/my.cfg");
}

TEST(Planner, WarnsAboutHandMadeFilesOnEveryRun) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-custom.conf"] =
      by_hand("title mine\nefi /EFI/xen/my-xen.efi\n");
  state.xen_images["EFI/xen/my-xen.efi"] = by_hand("");
  const std::string warning =
      "left alone 2 file(s) that xen-boot-builder did not write: loader/entries/xen-custom.conf, "
      "EFI/xen/my-xen.efi";
  EXPECT_EQ(plan({generation("generation-2", 2)}, state).warnings,
            std::vector<std::string>{warning});
  auto again =
      plan({generation("generation-2", 2)}, after(plan({generation("generation-2", 2)}), state));
  EXPECT_EQ(again.warnings, std::vector<std::string>{warning}) << "the next run says it again";
}

TEST(Planner, SaysWhenItReplacesAHandMadeFileAtOneOfItsNames) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-generation-2.conf"] = by_hand("title mine\n");
  state.xen_images["EFI/xen/xen-generation-2.efi"] = by_hand("");
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.images.size(), 1u);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_EQ(result.warnings[0],
            "replacing 2 file(s) that xen-boot-builder did not write, at names it writes: "
            "EFI/xen/xen-generation-2.efi, loader/entries/xen-generation-2.conf");
}

TEST(Planner, SharedImagesOfOneXenEfiHaveOneNameWhateverTheBootspecVersion) {
  auto v1 = generation("generation-1", 1);
  v1.bootspec->xen->schema = 1;
  auto v2 = generation("generation-2", 2);
  v2.bootspec->xen->version = "4.17.7";
  auto result = plan_shared({v1, v2});
  EXPECT_EQ(result.plan.images_after.size(), 1u);
  EXPECT_NE(find(result.plan.images, "EFI/xen/xen-4.17.7-3fa9c2d1.efi"), nullptr);
}

TEST(Planner, RemovesAStaleSymlinkAndReplacesOneAtItsOwnName) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-generation-9.conf"] = symlink();
  state.xen_entries["loader/entries/xen-generation-2.conf"] = symlink();
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_TRUE(contains(result.plan.removals, "loader/entries/xen-generation-9.conf"));
  EXPECT_NE(find(result.plan.entries, "loader/entries/xen-generation-2.conf"), nullptr);
  EXPECT_FALSE(contains(result.plan.removals, "loader/entries/xen-generation-2.conf"));
}

TEST(Planner, KeepsTheExistingEntryOfAGenerationWhoseBootspecBroke) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-generation-1.conf"] =
      ours("title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-1.efi\n");
  state.xen_images["EFI/xen/xen-generation-1.efi"] = ours("[global]\n");
  auto result = plan({broken("generation-1", 1), generation("generation-2", 2)}, state);
  EXPECT_TRUE(result.plan.removals.empty());
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("nixos-generation-1"), std::string::npos);
  EXPECT_NE(result.warnings[0].find("cannot open"), std::string::npos);
  EXPECT_FALSE(result.default_failure);
}

TEST(Planner, SaysWhyAnExistingEntryThatDoesNotParseIsComparedAsAWhole) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-generation-1.conf"] =
      ours(std::string("title A") + '\0' + "B\nefi /EFI/xen/xen-generation-1.efi\n");
  auto result = plan({generation("generation-1", 1)}, state);
  ASSERT_EQ(result.plan.changes.size(), 1u);
  EXPECT_EQ(result.plan.changes[0].detail.substr(0, 5), "entry");
  const auto said = std::find_if(result.notes.begin(), result.notes.end(), [](const auto& note) {
    return note.find("contains a NUL byte") != std::string::npos &&
           note.find("(compared as a whole)") != std::string::npos;
  });
  EXPECT_NE(said, result.notes.end()) << "the reason is kept for the debug verbosity";
}

TEST(Planner, FailsWhenTheDefaultGenerationGetsNoEntry) {
  auto result = plan({generation("generation-1", 1), broken("generation-2", 2)});
  ASSERT_TRUE(result.default_failure);
  EXPECT_EQ(*result.default_failure, "nixos-generation-2");

  EspState state = esp("timeout 5\ndefault nixos-generation-1.conf\n");
  EXPECT_FALSE(
      plan({generation("generation-1", 1), broken("generation-2", 2)}, state).default_failure);
}

TEST(Planner, RefusesAParameterThatWouldInjectAConfigLine) {
  auto hostile = generation("generation-3", 3);
  hostile.bootspec->xen->params.push_back("x\nkernel=evil");
  auto result =
      plan({generation("generation-2", 2), hostile}, esp("default nixos-generation-2.conf\n"));
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-generation-2.conf");
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("nixos-generation-3"), std::string::npos);
}

// What verify would call not bootable, the planner refuses: each case costs
// only its own generation.
TEST(Planner, RefusesWhatVerifyWouldRejectWithTheReason) {
  struct Case {
    const char* what;
    std::function<void(Generation&)> spoil;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"non-ASCII kernel parameter",
       [](Generation& g) { g.bootspec->kernel_params.push_back("caf\xc3\xa9"); },
       "kernel params[3]: contains a byte outside ASCII"},
      {"non-ASCII Xen parameter",
       [](Generation& g) { g.bootspec->xen->params.push_back("\xc3\xa9"); },
       "options[2]: contains a byte outside ASCII"},
      {"control character",
       [](Generation& g) {
         g.bootspec->kernel_params.push_back(
             "a\x0b"
             "b");
       },
       "contains the control character \\x0b, at which Xen ends the line"},
      {"DEL", [](Generation& g) { g.bootspec->kernel_params.push_back("a\x7f"); }, "\\x7f"},
      {"ESC", [](Generation& g) { g.bootspec->xen->params.push_back("\x1b[31m"); }, "\\x1b"},
      {"a comment sign", [](Generation& g) { g.bootspec->kernel_params.push_back("a#b"); },
       "contains '#', where Xen would start a comment"},
      {"kernel not on the ESP", [](Generation& g) { g.entry.kernel = "/EFI/nixos/gone.efi"; },
       "kernel \\EFI\\nixos\\gone.efi is not on the ESP (EFI/nixos/gone.efi)"},
      {"initrd not on the ESP", [](Generation& g) { g.entry.initrds = {"/EFI/nixos/gone.efi"}; },
       "ramdisk \\EFI\\nixos\\gone.efi is not on the ESP (EFI/nixos/gone.efi)"},
      {"kernel with a blank", [](Generation& g) { g.entry.kernel = "/EFI/nixos/my kernel.efi"; },
       "contains a blank, where Xen would end the file name"},
  };
  for (const auto& c : cases) {
    auto victim = generation("generation-1", 1);
    c.spoil(victim);
    auto result = plan({victim, generation("generation-2", 2)});
    ASSERT_EQ(result.plan.entries.size(), 1u) << c.what;
    EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-generation-2.conf") << c.what;
    ASSERT_EQ(result.warnings.size(), 1u) << c.what;
    EXPECT_TRUE(result.warnings[0].starts_with("nixos-generation-1: skipped: "))
        << result.warnings[0];
    EXPECT_NE(result.warnings[0].find(c.reason), std::string::npos)
        << c.what << ": " << result.warnings[0];
    EXPECT_FALSE(result.default_failure) << c.what;
  }
}

TEST(Planner, SkipsNamesThatCannotBeMirrored) {
  const std::string longest(layout::kMaxRestLength, 'a');
  auto result = plan({generation("", 1), generation(longest + "b", 2), generation(longest, 3)});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-" + longest + ".conf");
  ASSERT_EQ(result.warnings.size(), 2u);
  EXPECT_TRUE(result.warnings[0].starts_with("nixos-: skipped: ")) << result.warnings[0];
  EXPECT_NE(result.warnings[0].find("nothing after \"nixos-\""), std::string::npos);
  EXPECT_NE(result.warnings[1].find("would exceed 255 bytes"), std::string::npos)
      << result.warnings[1];
}

TEST(Planner, WarnsAboutADevicetreeInTheBootspecOrTheEntry) {
  auto in_spec = generation("generation-1", 1);
  in_spec.bootspec->devicetree = "/nix/store/d/board.dtb";
  auto in_entry = generation("generation-2", 2);
  in_entry.entry.devicetree = "/EFI/nixos/board.dtb";
  auto result = plan({in_spec, in_entry});
  EXPECT_EQ(result.plan.entries.size(), 2u);
  ASSERT_EQ(result.warnings.size(), 2u);
  EXPECT_NE(
      result.warnings[0].find("nixos-generation-1: Xen's EFI configuration carries no devicetree"),
      std::string::npos);
  EXPECT_NE(
      result.warnings[1].find("nixos-generation-2: Xen's EFI configuration carries no devicetree"),
      std::string::npos);
}

TEST(Planner, RetargetsDefaultAndPreferredOnlyToXenEntriesThatWillExist) {
  auto result =
      plan({generation("generation-1", 1, false), generation("generation-2", 2)},
           esp("timeout 5\npreferred nixos-generation-2.conf\ndefault nixos-generation-1.conf\n"));
  ASSERT_TRUE(result.plan.loader_conf);
  EXPECT_EQ(*result.plan.loader_conf,
            "timeout 5\npreferred xen-generation-2.conf\ndefault nixos-generation-1.conf\n");
}

TEST(Planner, RetargetsAGlobDefaultWhenAXenEntryMatches) {
  auto result = plan({generation("generation-2", 2)}, esp("default nixos-*\r\n"));
  ASSERT_TRUE(result.plan.loader_conf);
  EXPECT_EQ(*result.plan.loader_conf, "default xen-*\r\n");
  EXPECT_FALSE(
      plan({generation("generation-2", 2, false)}, esp("default nixos-*\r\n")).plan.loader_conf);
}

// A glob selects the entry systemd-boot sorts first among its matches: the
// newest generation. When that generation got no Xen entry, xen-* would
// select an older one, so the default stays, and the run fails, whatever the
// naming scheme.
TEST(Planner, KeepsAGlobDefaultWhenTheNewestGenerationGotNoXenEntry) {
  for (const auto& [older, newer] :
       {std::pair<std::string, std::string>{"generation-1", "generation-2"},
        {"0f3a9c", "9b1d2e"},
        {"9b1d2e", "0f3a9c"}}) {
    auto result = plan({generation(older, 1), broken(newer, 2)}, esp("default nixos-*\n"));
    EXPECT_FALSE(result.plan.loader_conf) << older << " " << newer;
    ASSERT_TRUE(result.default_failure) << older << " " << newer;
    EXPECT_EQ(*result.default_failure, "nixos-" + newer);

    auto fine = plan({generation(older, 1), generation(newer, 2)}, esp("default nixos-*\n"));
    ASSERT_TRUE(fine.plan.loader_conf) << older << " " << newer;
    EXPECT_FALSE(fine.default_failure);
  }
}

TEST(Planner, KeepsAGlobDefaultThatAHandMadeXenEntryWouldWin) {
  EspState state = esp("default nixos-*\n");
  state.xen_entries["loader/entries/xen-custom.conf"] =
      by_hand("title mine\nsort-key aaa\nversion 1\nefi /EFI/xen/my-xen.efi\n");
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_FALSE(result.plan.loader_conf);
  EXPECT_FALSE(result.default_failure);
}

TEST(Planner, UsesPreferredOnlyWhenItSelectsAnEntry) {
  auto gens = std::vector<Generation>{generation("generation-1", 1), broken("generation-2", 2)};
  auto result = plan(gens, esp("preferred nixos-generation-1.conf\ndefault nixos-*\n"));
  EXPECT_FALSE(result.default_failure);
  auto stale = plan(gens, esp("preferred nixos-generation-7.conf\ndefault nixos-*\n"));
  ASSERT_TRUE(stale.default_failure);
  EXPECT_EQ(*stale.default_failure, "nixos-generation-2");
}

TEST(Planner, LeavesLoaderConfAloneWithNoDefault) {
  EXPECT_FALSE(
      plan({generation("generation-2", 2)}, esp("default nixos-generation-2.conf\n"), false)
          .plan.loader_conf);
}

TEST(Planner, WarnsAboutAnUnusableLoaderConfAndBuildsTheEntries) {
  EspState state = esp();
  state.loader_conf_problem =
      "/boot/loader/loader.conf: is a symlink; symlinks on the ESP are not followed";
  auto result = plan({generation("generation-2", 2)}, state);
  EXPECT_EQ(result.plan.entries.size(), 1u);
  EXPECT_FALSE(result.plan.loader_conf);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_EQ(result.warnings[0], "loader/loader.conf: " + state.loader_conf_problem +
                                    "; the default entry was not changed");
  EXPECT_TRUE(plan({generation("generation-2", 2)}, state, false).warnings.empty());
}

TEST(Planner, StartsANewCountedEntryWithAllTheSourceTries) {
  auto g = generation("abc", 7);
  g.counter = BootCounter{2, 1};
  auto result = plan({g});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-abc+3.conf");
}

TEST(Planner, SaturatesATotalOfTriesThatWouldWrap) {
  auto g = generation("abc", 7);
  g.counter = BootCounter{4294967295u, 1};
  auto result = plan({g});
  ASSERT_EQ(result.plan.entries.size(), 1u);
  EXPECT_EQ(result.plan.entries[0].path, "loader/entries/xen-abc+4294967295.conf");
}

TEST(Planner, KeepsTheCounterOfAnUnchangedCountedEntry) {
  auto g = generation("abc", 7);
  g.counter = BootCounter{3, std::nullopt};
  Planned first = plan({g});
  EspState state = after(first);
  state.xen_entries["loader/entries/xen-abc+1-2.conf"] =
      state.xen_entries.at("loader/entries/xen-abc+3.conf");
  state.xen_entries.erase("loader/entries/xen-abc+3.conf");
  auto result = plan({g}, state);
  EXPECT_TRUE(result.plan.entries.empty()) << "unchanged: neither rewritten nor renamed";
  EXPECT_TRUE(result.plan.removals.empty());
  EXPECT_TRUE(result.plan.changes.empty());
}

TEST(Planner, ReportsWhichFieldsOfAChangedEntryChanged) {
  auto before = generation("generation-5", 5);
  EspState state = after(plan({before}));
  EXPECT_TRUE(plan({before}, state).plan.changes.empty());

  auto changed = before;
  changed.bootspec->xen->params = {"dom0_mem=2048M"};
  changed.entry.version = "Generation 5 NixOS 26.05";
  auto result = plan({changed}, state);
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

TEST(Planner, SelfContainedImagesEmbedKernelInitrdAndMicrocode) {
  auto g = generation("generation-4", 4);
  g.kernel_file = HostFile{"/host/nix/store/dddd-linux-6.12.7/bzImage", {10, 1}, {}};
  g.initrd_file = HostFile{"/host/nix/store/bbbb-initrd/initrd", {20, 2}, {}};
  PlanOptions options = options_for(layout::Kind::self_contained, true, false);
  options.ucode = HostFile{"/host/ucode.bin", {30, 3}, {}};
  auto result = make_plan({g}, EspState{}, options);
  ASSERT_EQ(result.plan.images.size(), 1u);
  const auto& recipe = std::get<ImageRecipe>(result.plan.images[0].content);
  ASSERT_EQ(recipe.sections.size(), 4u);
  EXPECT_EQ(recipe.sections[1].name, ".kernel");
  EXPECT_EQ(std::get<HostFile>(recipe.sections[1].content).path, g.kernel_file.path);
  EXPECT_EQ(recipe.sections[2].name, ".ramdisk");
  EXPECT_EQ(recipe.sections[3].name, ".ucode");
  EXPECT_EQ(std::get<HostFile>(recipe.sections[3].content).path, "/host/ucode.bin");
  EXPECT_EQ(config_of(result.plan.images[0]),
            kMarker +
                "\n[global]\ndefault=nixos\n\n[nixos]\noptions=dom0_mem=4096M console=com1\n"
                "kernel=bzImage init=/nix/store/aaaa-nixos-system/init loglevel=4 gen=4\n");
  EXPECT_TRUE(result.warnings.empty()) << "the source entry's files are not used";
}

TEST(Planner, LanzabooteModeLeavesEfiNixosAlone) {
  EspState state = esp();
  state.legacy_images = {"EFI/nixos/xen-generation-2.efi"};
  PlanOptions options = options_for(layout::Kind::self_contained, false, false);
  options.lanzaboote = true;
  auto result = make_plan({generation("generation-2", 2)}, state, options);
  EXPECT_TRUE(result.plan.removals.empty());
  EXPECT_FALSE(result.plan.loader_conf);
}

// Every image of a signing run names the signer, so that signing, or a new
// certificate, makes each image again.
TEST(Planner, SignedImagesNameTheSignerAndANewOneRemakesThem) {
  const std::vector<Generation> gens = {generation("generation-1", 1)};
  PlanOptions options = options_for(layout::Kind::unified);
  const EspState unsigned_state = after(make_plan(gens, esp(), options));
  options.signer = "certificate-a";
  auto signed_plan = make_plan(gens, unsigned_state, options);
  ASSERT_EQ(signed_plan.plan.images.size(), 1u);
  EXPECT_EQ(std::get<ImageRecipe>(signed_plan.plan.images[0].content).signer, "certificate-a");

  const EspState signed_state = after(signed_plan);
  EXPECT_TRUE(make_plan(gens, signed_state, options).plan.images.empty());
  options.signer = "certificate-b";
  EXPECT_EQ(make_plan(gens, signed_state, options).plan.images.size(), 1u);
}

// --- what an unchanged run does, and what makes it do more ------------------------------

TEST(Planner, ARunWithNothingToChangePlansNoWrite) {
  const std::vector<Generation> gens = {generation("generation-1", 1),
                                        generation("generation-2", 2)};
  EspState state = after(plan(gens, esp("default nixos-generation-2.conf\n")));
  auto again = plan(gens, state);
  EXPECT_TRUE(again.plan.images.empty());
  EXPECT_TRUE(again.plan.entries.empty());
  EXPECT_FALSE(again.plan.loader_conf);
  EXPECT_TRUE(again.plan.removals.empty());
  EXPECT_TRUE(again.plan.changes.empty());
  EXPECT_EQ(again.plan.images_after.size(), 2u);
}

TEST(Planner, AnImageTheRecordDoesNotVouchForIsPlannedWithTheDigestItReplaces) {
  const std::vector<Generation> gens = {generation("generation-1", 1)};
  EspState state = after(plan(gens));
  ExistingFile& image = state.xen_images.at("EFI/xen/xen-generation-1.efi");
  image.recipe.reset();
  image.digest = "f00d";
  auto again = plan(gens, state);
  ASSERT_EQ(again.plan.images.size(), 1u);
  EXPECT_EQ(again.plan.images[0].replaces_digest, "f00d");
  EXPECT_TRUE(again.plan.entries.empty());
}

TEST(Planner, RebuildPlansEveryImageWithoutTheDigestOfWhatItReplaces) {
  const std::vector<Generation> gens = {generation("generation-1", 1),
                                        generation("generation-2", 2)};
  EspState state = after(plan(gens));
  PlanOptions options = options_for(layout::Kind::unified);
  options.rebuild = true;
  auto again = make_plan(gens, state, options);
  ASSERT_EQ(again.plan.images.size(), 2u);
  for (const auto& image : again.plan.images)
    EXPECT_EQ(image.replaces_digest, std::nullopt)
        << image.path << " would be compared, not written";
  EXPECT_TRUE(again.plan.entries.empty()) << "texts are still written only when they differ";
  EXPECT_TRUE(again.warnings.empty());
}

TEST(Planner, AMissingConfigurationFileIsReportedAsTheXenConfig) {
  const std::vector<Generation> gens = {generation("generation-1", 1)};
  EspState state = after(plan_shared(gens));
  ASSERT_EQ(state.xen_images.erase("EFI/xen/xen-generation-1.cfg"), 1u);
  auto again = plan_shared(gens, state);
  ASSERT_NE(find(again.plan.images, "EFI/xen/xen-generation-1.cfg"), nullptr);
  ASSERT_EQ(again.plan.changes.size(), 1u);
  EXPECT_EQ(again.plan.changes[0].kind, '~');
  EXPECT_EQ(again.plan.changes[0].name, "xen-generation-1");
  EXPECT_EQ(again.plan.changes[0].detail, "xen config");
}

TEST(Planner, ANewXenEfiOrKernelStampRebuildsTheImage) {
  auto g = generation("generation-1", 1);
  EspState state = after(plan({g}));
  auto newer = g;
  newer.xen_efi.stamp.mtime_ns += 1;
  ASSERT_EQ(plan({newer}, state).plan.images.size(), 1u);
  auto embedded = g;
  embedded.kernel_file = HostFile{"/host/k", {10, 1}, {}};
  const PlanOptions self_contained = options_for(layout::Kind::self_contained, true, false);
  EspState embedded_state = after(make_plan({embedded}, EspState{}, self_contained), EspState{});
  EXPECT_TRUE(make_plan({embedded}, embedded_state, self_contained).plan.images.empty());
  embedded.kernel_file.stamp.size = 11;
  EXPECT_EQ(make_plan({embedded}, embedded_state, self_contained).plan.images.size(), 1u);
  // An initrd made during the run (secrets appended) is known by its digest.
  embedded.initrd_file = HostFile{"/tmp/xen-boot-builder-a/initrd-0", {50, 9}, "aaaa"};
  EspState with_secrets = after(make_plan({embedded}, EspState{}, self_contained), EspState{});
  embedded.initrd_file = HostFile{"/tmp/xen-boot-builder-b/initrd-0", {50, 10}, "aaaa"};
  EXPECT_TRUE(make_plan({embedded}, with_secrets, self_contained).plan.images.empty())
      << "another private copy of the same bytes";
  embedded.initrd_file->digest = "bbbb";
  EXPECT_EQ(make_plan({embedded}, with_secrets, self_contained).plan.images.size(), 1u);
}

TEST(Planner, AChangedEntryTextIsTheOnlyWrite) {
  auto g = generation("generation-1", 1);
  EspState state = after(plan({g}));
  g.entry.version = "Generation 1 NixOS 26.05";
  auto again = plan({g}, state);
  EXPECT_TRUE(again.plan.images.empty());
  ASSERT_EQ(again.plan.entries.size(), 1u);
  EXPECT_NE(std::get<std::string>(again.plan.entries[0].content).find("26.05"), std::string::npos);
}

TEST(Planner, KeepsDebugSectionsOnlyWhenAsked) {
  auto result = make_plan({generation("generation-1", 1)}, esp(),
                          options_for(layout::Kind::unified, true, true));
  ASSERT_EQ(result.plan.images.size(), 1u);
  EXPECT_FALSE(std::get<ImageRecipe>(result.plan.images[0].content).drop_debug_sections);
}

// --- the shared layout --------------------------------------------------------------------

TEST(Planner, SharedLayoutWritesOneImageAndAConfigurationPerEntry) {
  auto result = plan_shared({generation("generation-1", 1), generation("generation-2", 2)});
  ASSERT_EQ(result.plan.images.size(), 3u);
  const FileWrite* image = find(result.plan.images, "EFI/xen/xen-3fa9c2d1.efi");
  ASSERT_NE(image, nullptr) << "v2 without a version: the name is the digest alone";
  EXPECT_TRUE(std::get<ImageRecipe>(image->content).sections.empty());
  const FileWrite* config = find(result.plan.images, "EFI/xen/xen-generation-2.cfg");
  ASSERT_NE(config, nullptr);
  EXPECT_NE(std::get<std::string>(config->content).find("gen=2"), std::string::npos);
  EXPECT_TRUE(std::get<std::string>(config->content).starts_with(kMarker + "\n"));
  const FileWrite* entry = find(result.plan.entries, "loader/entries/xen-generation-2.conf");
  ASSERT_NE(entry, nullptr);
  EXPECT_NE(std::get<std::string>(entry->content)
                .find("efi /EFI/xen/xen-3fa9c2d1.efi\noptions xen-3fa9c2d1.efi "
                      "-cfg=xen-generation-2.cfg\n"),
            std::string::npos);
  EXPECT_EQ(result.plan.images_after.size(), 1u);
  EXPECT_EQ(result.plan.images_after.at("EFI/xen/xen-3fa9c2d1.efi").config, "");
}

TEST(Planner, SharedLayoutNamesTheImageByVersionAndRefusesAXenEfiWithAConfig) {
  auto named = generation("generation-1", 1);
  named.bootspec->xen->version = "4.17.7";
  auto with_config = generation("generation-2", 2);
  with_config.xen_has_config = true;
  auto result = plan_shared({named, with_config});
  EXPECT_NE(find(result.plan.images, "EFI/xen/xen-4.17.7-3fa9c2d1.efi"), nullptr);
  EXPECT_EQ(result.plan.entries.size(), 1u);
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("carries a .config section"), std::string::npos)
      << result.warnings[0];
  EXPECT_TRUE(result.default_failure) << "generation 2 is the default";
  EXPECT_EQ(plan({with_config}).plan.entries.size(), 1u) << "the unified layout replaces it";
}

TEST(Planner, SwitchingLayoutsWritesTheNewFilesAndRemovesTheOldOnesLast) {
  const std::vector<Generation> gens = {generation("generation-1", 1),
                                        generation("generation-2", 2)};
  EspState unified = after(plan(gens));
  auto to_shared = plan_shared(gens, unified);
  EXPECT_EQ(to_shared.plan.images.size(), 3u);
  EXPECT_EQ(to_shared.plan.entries.size(), 2u);
  EXPECT_EQ(to_shared.plan.removals, (std::vector<std::string>{"EFI/xen/xen-generation-1.efi",
                                                               "EFI/xen/xen-generation-2.efi"}));
  ASSERT_EQ(to_shared.plan.changes.size(), 2u);
  EXPECT_EQ(to_shared.plan.changes[0].detail, "efi, options");

  EspState shared = after(to_shared, unified);
  for (const auto& path : to_shared.plan.removals) shared.xen_images.erase(path);
  EXPECT_TRUE(plan_shared(gens, shared).plan.images.empty());
  auto back = plan(gens, shared);
  EXPECT_EQ(back.plan.images.size(), 2u);
  EXPECT_EQ(back.plan.removals,
            (std::vector<std::string>{"EFI/xen/xen-3fa9c2d1.efi", "EFI/xen/xen-generation-1.cfg",
                                      "EFI/xen/xen-generation-2.cfg"}));
}

TEST(Planner, AutoSharesAXenEfiWithoutConfigAndGivesOneWithItsOwnUnifiedImages) {
  auto plain = generation("generation-1", 1);
  auto with_config = generation("generation-2", 2);
  with_config.xen_efi.path = "/host/nix/store/cccc-xen-4.22.0-boot/boot/xen.efi";
  with_config.xen_has_config = true;
  auto result = make_plan({plain, with_config}, esp(), PlanOptions{});
  EXPECT_TRUE(result.warnings.empty()) << "auto never skips a xen.efi that carries .config";
  EXPECT_NE(find(result.plan.images, "EFI/xen/xen-3fa9c2d1.efi"), nullptr);
  EXPECT_NE(find(result.plan.images, "EFI/xen/xen-generation-1.cfg"), nullptr);
  const FileWrite* unified = find(result.plan.images, "EFI/xen/xen-generation-2.efi");
  ASSERT_NE(unified, nullptr);
  EXPECT_NE(config_of(*unified).find("gen=2"), std::string::npos);
  ASSERT_EQ(result.generations.size(), 2u);
  EXPECT_EQ(result.generations[0].layout, "shared");
  EXPECT_EQ(result.generations[0].layout_reason, "one image per Xen build");
  EXPECT_EQ(result.generations[1].layout, "unified");
  EXPECT_EQ(result.generations[1].layout_reason, "its xen.efi carries a .config of its own");
}

TEST(Planner, AutoSignsSelfContainedImages) {
  PlanOptions options;
  options.layout.signing = true;
  options.signer = "sbsign:cert-digest";
  auto result = make_plan({generation("generation-1", 1)}, esp(), options);
  const FileWrite* image = find(result.plan.images, "EFI/xen/xen-generation-1.efi");
  ASSERT_NE(image, nullptr);
  const auto& recipe = std::get<ImageRecipe>(image->content);
  EXPECT_EQ(recipe.signer, "sbsign:cert-digest");
  std::vector<std::string> names;
  for (const auto& section : recipe.sections) names.push_back(section.name);
  EXPECT_EQ(names, (std::vector<std::string>{".config", ".kernel"}));
  EXPECT_EQ(result.generations[0].layout, "self-contained");
}

TEST(Planner, KeepsTheImageAndConfigurationOfAKeptSharedEntry) {
  const std::vector<Generation> gens = {generation("generation-1", 1),
                                        generation("generation-2", 2)};
  EspState shared = after(plan_shared(gens));
  auto result = plan_shared({broken("generation-1", 1), generation("generation-2", 2)}, shared);
  EXPECT_TRUE(result.plan.removals.empty());
  EXPECT_TRUE(result.plan.images_after.count("EFI/xen/xen-3fa9c2d1.efi"));
}

// What `list` shows of each generation, in the order found.
TEST(PlannerOutcome, SaysOfEachGenerationItsEntryOrWhyItHasNone) {
  auto no_xen = generation("generation-2", 2, false);
  auto result = plan({broken("generation-1", 1), no_xen, generation("generation-3", 3)},
                     esp("default nixos-generation-3.conf\n"));
  ASSERT_EQ(result.generations.size(), 3u);
  const GenerationOutcome& skipped = result.generations[0];
  EXPECT_EQ(skipped.label, "nixos-generation-1");
  EXPECT_EQ(skipped.status, GenerationOutcome::Status::skipped);
  EXPECT_EQ(skipped.reason, "/nix/store/x/boot.json: cannot open");
  EXPECT_FALSE(skipped.entry) << "no Xen entry to keep";
  EXPECT_EQ(result.generations[1].status, GenerationOutcome::Status::no_xen);
  EXPECT_EQ(result.generations[1].reason, "its bootspec has no Xen extension");
  EXPECT_FALSE(result.generations[1].entry);
  EXPECT_EQ(result.generations[1].xen_efi, "");
  const GenerationOutcome& built = result.generations[2];
  EXPECT_EQ(built.status, GenerationOutcome::Status::xen_entry);
  EXPECT_EQ(built.reason, "");
  EXPECT_EQ(built.source, "loader/entries/nixos-generation-3.conf");
  EXPECT_EQ(built.number, 3u);
  EXPECT_EQ(built.entry, "loader/entries/xen-generation-3.conf");
  EXPECT_EQ(built.files, (std::vector<std::string>{"EFI/xen/xen-generation-3.efi"}));
  EXPECT_EQ(built.xen_efi, kXen);
  EXPECT_FALSE(built.installed) << "nothing is on the ESP yet";
  EXPECT_EQ(std::count_if(result.generations.begin(), result.generations.end(),
                          [](const GenerationOutcome& g) { return g.is_default; }),
            1);
  EXPECT_TRUE(built.is_default);
}

TEST(PlannerOutcome, TheDefaultIsTheGenerationSystemdBootPicks) {
  auto result = plan({generation("generation-1", 1), generation("generation-2", 2)},
                     esp("default nixos-generation-1.conf\n"));
  EXPECT_TRUE(result.generations[0].is_default);
  EXPECT_FALSE(result.generations[1].is_default);
}

TEST(PlannerOutcome, ALoaderConfRetargetedToAXenEntryNamesItsGeneration) {
  const std::vector<Generation> gens = {generation("generation-1", 1),
                                        generation("generation-2", 2)};
  auto first = plan(gens, esp("default nixos-generation-1.conf\n"));
  ASSERT_EQ(first.plan.loader_conf, "default xen-generation-1.conf\n");
  EspState retargeted = after(first, esp("default nixos-generation-1.conf\n"));
  auto second = plan(gens, retargeted);
  EXPECT_TRUE(second.generations[0].is_default);
  EXPECT_FALSE(second.generations[1].is_default);
  auto broken_default =
      plan({broken("generation-1", 1), generation("generation-2", 2)}, retargeted);
  EXPECT_EQ(broken_default.default_failure, "nixos-generation-1");
}

TEST(PlannerOutcome, AnEntryIsInstalledOnceARunWroteItAndItsImage) {
  const std::vector<Generation> gens = {generation("generation-1", 1)};
  auto second = plan(gens, after(plan(gens)));
  EXPECT_TRUE(second.generations[0].installed);
  EspState image_gone = after(plan(gens));
  image_gone.xen_images.erase("EFI/xen/xen-generation-1.efi");
  EXPECT_FALSE(plan(gens, image_gone).generations[0].installed);
}

TEST(PlannerOutcome, SharedLayoutListsTheImageAndTheConfigurationFile) {
  auto result = plan_shared({generation("generation-1", 1)});
  EXPECT_EQ(result.generations[0].files,
            (std::vector<std::string>{"EFI/xen/xen-3fa9c2d1.efi", "EFI/xen/xen-generation-1.cfg"}));
}

TEST(PlannerOutcome, ASkippedGenerationShowsTheEntryItKeeps) {
  EspState state = esp();
  state.xen_entries["loader/entries/xen-generation-1.conf"] =
      ours("title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-generation-1.efi\n");
  state.xen_images["EFI/xen/xen-generation-1.efi"] = ours("[global]\n");
  auto result = plan({broken("generation-1", 1), generation("generation-2", 2)}, state);
  const GenerationOutcome& kept = result.generations[0];
  EXPECT_EQ(kept.status, GenerationOutcome::Status::skipped);
  EXPECT_EQ(kept.entry, "loader/entries/xen-generation-1.conf");
  EXPECT_EQ(kept.files, (std::vector<std::string>{"EFI/xen/xen-generation-1.efi"}));
  EXPECT_TRUE(kept.installed);
}

}  // namespace
}  // namespace xbb
