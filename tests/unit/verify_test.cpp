#include "xbb/verify.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

// verify_snapshot: the judgement of `verify`, a pure function of what it read
// of the ESP (issue 8). Snapshots are written out by hand here; the files they
// stand for are described next to each.
namespace xbb {
namespace {

const std::string kConfig =
    "[global]\n"
    "default=nixos\n"
    "\n"
    "[nixos]\n"
    "options=console=com1\n"
    "kernel=\\EFI\\nixos\\k.efi init=/nix/store/aaaa-nixos-system/init loglevel=4\n"
    "ramdisk=\\EFI\\nixos\\i.efi\n";

// One Xen entry (xen-a.conf) whose image carries kConfig, and the kernel
// and initrd it names, on the ESP.
EspSnapshot bootable() {
  EspSnapshot snapshot;
  snapshot.entries["xen-a.conf"] = "title NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-a.efi\n";
  snapshot.images["EFI/xen/xen-a.efi"].config = kConfig;
  snapshot.files = {"EFI/nixos/k.efi", "EFI/nixos/i.efi"};
  return snapshot;
}

// The problems of the one entry `name`, which must have been checked.
std::vector<std::string> problems_of(const Verification& result, const std::string& name) {
  for (const auto& check : result.entries) {
    if (check.entry == name) return check.problems;
  }
  ADD_FAILURE() << name << " was not checked";
  return {};
}

bool any_contains(const std::vector<std::string>& lines, const std::string& text) {
  for (const auto& line : lines) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

TEST(VerifySnapshot, EntryWithImageKernelAndRamdiskIsBootable) {
  Verification result = verify_snapshot(bootable());
  ASSERT_EQ(result.entries.size(), 1u);
  EXPECT_EQ(result.entries[0].entry, "xen-a.conf");
  EXPECT_TRUE(result.entries[0].problems.empty());
  EXPECT_TRUE(result.loader_conf_problems.empty());
  EXPECT_TRUE(result.ok());
}

TEST(VerifySnapshot, EmbeddedKernelAndRamdiskNeedNoFiles) {
  EspSnapshot snapshot = bootable();
  snapshot.files.clear();
  snapshot.images["EFI/xen/xen-a.efi"].kernel = true;
  snapshot.images["EFI/xen/xen-a.efi"].ramdisk = true;
  EXPECT_TRUE(verify_snapshot(snapshot).ok());
}

TEST(VerifySnapshot, MissingKernelAndRamdiskAreEachNamed) {
  EspSnapshot snapshot = bootable();
  snapshot.files.clear();
  Verification result = verify_snapshot(snapshot);
  EXPECT_FALSE(result.ok());
  auto problems = problems_of(result, "xen-a.conf");
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_TRUE(any_contains(problems, "EFI/nixos/k.efi"));
  EXPECT_TRUE(any_contains(problems, "EFI/nixos/i.efi"));
}

TEST(VerifySnapshot, MissingImageIsNamed) {
  EspSnapshot snapshot = bootable();
  snapshot.images.clear();
  auto problems = problems_of(verify_snapshot(snapshot), "xen-a.conf");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("/EFI/xen/xen-a.efi"), std::string::npos);
}

TEST(VerifySnapshot, ImageProblemIsTheEntrysProblem) {
  EspSnapshot snapshot = bootable();
  snapshot.images["EFI/xen/xen-a.efi"].problem =
      "EFI/xen/xen-a.efi: Subsystem 3: not an EFI application (Subsystem 10)";
  EXPECT_EQ(problems_of(verify_snapshot(snapshot), "xen-a.conf"),
            std::vector<std::string>{snapshot.images["EFI/xen/xen-a.efi"].problem});
}

TEST(VerifySnapshot, ImageWithoutConfigurationIsNotBootable) {
  EspSnapshot snapshot = bootable();
  snapshot.images["EFI/xen/xen-a.efi"].config.reset();
  auto problems = problems_of(verify_snapshot(snapshot), "xen-a.conf");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find(".config"), std::string::npos);
}

TEST(VerifySnapshot, ConfigurationXenWouldReadDifferentlyIsNotBootable) {
  for (const std::string& kernel_line : {
           std::string("kernel=\\EFI\\nixos\\k.efi console=\xc3\xa9\n"),  // outside ASCII
           std::string("kernel=\\EFI\\nixos\\k.efi loglvl=all\x0b\n"),    // VT ends Xen's line
       }) {
    EspSnapshot snapshot = bootable();
    snapshot.images["EFI/xen/xen-a.efi"].config =
        "[global]\ndefault=nixos\n\n[nixos]\n" + kernel_line;
    EXPECT_FALSE(verify_snapshot(snapshot).ok()) << kernel_line;
  }
}

TEST(VerifySnapshot, KernelNameWithABlankIsCutThereAsXenCutsIt) {
  EspSnapshot snapshot = bootable();
  snapshot.images["EFI/xen/xen-a.efi"].config =
      "[global]\ndefault=nixos\n\n[nixos]\nkernel=\\EFI\\nixos\\my kernel.efi\n";
  snapshot.files = {"EFI/nixos/my kernel.efi"};
  auto problems = problems_of(verify_snapshot(snapshot), "xen-a.conf");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("EFI/nixos/my)"), std::string::npos) << problems[0];
}

TEST(VerifySnapshot, EntryWithoutEfiLineIsNotBootable) {
  EspSnapshot snapshot = bootable();
  snapshot.entries["xen-a.conf"] = "title NixOS (with Xen Hypervisor)\n";
  auto problems = problems_of(verify_snapshot(snapshot), "xen-a.conf");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("efi"), std::string::npos);
}

TEST(VerifySnapshot, UnreadableXenEntryIsReportedWithItsReason) {
  EspSnapshot snapshot = bootable();
  snapshot.unreadable_entries["xen-b.conf"] = "loader/entries/xen-b.conf: is a symlink";
  Verification result = verify_snapshot(snapshot);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(problems_of(result, "xen-b.conf"),
            std::vector<std::string>{"loader/entries/xen-b.conf: is a symlink"});
  EXPECT_TRUE(problems_of(result, "xen-a.conf").empty());
}

TEST(VerifySnapshot, OnlyXenEntriesAreJudgedInNameOrder) {
  EspSnapshot snapshot = bootable();
  snapshot.entries["nixos-generation-1.conf"] = "title NixOS\nlinux /EFI/nixos/absent.efi\n";
  snapshot.entries["xen-0.conf"] = snapshot.entries["xen-a.conf"];
  Verification result = verify_snapshot(snapshot);
  ASSERT_EQ(result.entries.size(), 2u);
  EXPECT_EQ(result.entries[0].entry, "xen-0.conf");
  EXPECT_EQ(result.entries[1].entry, "xen-a.conf");
  EXPECT_TRUE(result.ok());
}

// --- loader.conf ---------------------------------------------------------------

EspSnapshot with_loader_conf(const std::string& text) {
  EspSnapshot snapshot = bootable();
  snapshot.entries["nixos-a+2-1.conf"] = "title NixOS\n";
  snapshot.loader_conf = text;
  return snapshot;
}

TEST(VerifyLoaderConf, DefaultsThatSelectAnEntryAreFine) {
  for (const std::string& text : {
           std::string("default xen-a.conf\n"),
           std::string("default xen-*\n"),
           std::string("default nixos-a.conf\n"),  // the counted nixos-a+2-1.conf
           std::string("preferred nixos-a.conf\ndefault nixos-*\n"),
           std::string("timeout 5\n"),
       }) {
    Verification result = verify_snapshot(with_loader_conf(text));
    EXPECT_TRUE(result.loader_conf_problems.empty()) << text;
    EXPECT_TRUE(result.ok()) << text;
  }
}

TEST(VerifyLoaderConf, DefaultOrPreferredSelectingNothingIsNamed) {
  Verification result =
      verify_snapshot(with_loader_conf("preferred xen-gone.conf\ndefault nixos-b*\n"));
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.loader_conf_problems.size(), 2u);
  EXPECT_TRUE(any_contains(result.loader_conf_problems, "xen-gone.conf"));
  EXPECT_TRUE(any_contains(result.loader_conf_problems, "nixos-b*"));
}

TEST(VerifyLoaderConf, DefaultSelectingNothingSaysWhyAnEntryIsNotInTheMenu) {
  EspSnapshot snapshot = with_loader_conf("default nixos-b.conf\n");
  snapshot.entries["nixos-b.conf"] = std::string("title A") + '\0' + "B\n";
  const Verification result = verify_snapshot(snapshot);
  ASSERT_EQ(result.loader_conf_problems.size(), 1u);
  EXPECT_TRUE(any_contains(result.loader_conf_problems, "not in the menu: nixos-b.conf"));
  EXPECT_TRUE(any_contains(result.loader_conf_problems, "contains a NUL byte"));
}

// Lanzaboote's entries are unified kernel images in EFI/Linux (Type #2):
// systemd-boot's default may select one.
TEST(VerifyLoaderConf, DefaultMaySelectAUnifiedKernelImage) {
  EspSnapshot snapshot = with_loader_conf("default nixos-generation-*\n");
  EXPECT_FALSE(verify_snapshot(snapshot).ok());
  snapshot.unified_kernels = {"nixos-generation-3-0123abcd.efi"};
  EXPECT_TRUE(verify_snapshot(snapshot).ok());
}

TEST(VerifyLoaderConf, BareDefaultLineIsSkippedAsSystemdBootSkipsIt) {
  EXPECT_TRUE(verify_snapshot(with_loader_conf("default\n")).ok());
  Verification result = verify_snapshot(with_loader_conf("default xen-gone.conf\ndefault\n"));
  ASSERT_EQ(result.loader_conf_problems.size(), 1u);
  EXPECT_NE(result.loader_conf_problems[0].find("xen-gone.conf"), std::string::npos);
}

TEST(VerifyLoaderConf, UnreadableLoaderConfIsReported) {
  EspSnapshot snapshot = bootable();
  snapshot.loader_conf_problem = "loader/loader.conf: is a folder, not a regular file";
  Verification result = verify_snapshot(snapshot);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.loader_conf_problems, std::vector<std::string>{snapshot.loader_conf_problem});
}

TEST(VerifyLoaderConf, NoLoaderConfIsFine) { EXPECT_TRUE(verify_snapshot(bootable()).ok()); }

}  // namespace
}  // namespace xbb
