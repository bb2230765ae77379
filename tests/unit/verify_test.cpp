#include "xbb/verify.hpp"

#include <gtest/gtest.h>

#include "xbb/xen_config.hpp"

namespace xbb {
namespace {

const std::string kImage = "EFI/xen/xen-generation-1.efi";
const std::string kKernel = "EFI/nixos/k.efi";
const std::string kInitrd = "EFI/nixos/i.efi";

std::string config(bool ramdisk = true) {
  XenConfig c;
  c.section = "nixos";
  c.kernel = "\\EFI\\nixos\\k.efi";
  c.kernel_params = {"init=/nix/store/a/init"};
  if (ramdisk) c.ramdisk = "\\EFI\\nixos\\i.efi";
  return render_xen_config(c);
}

// An ESP with one bootable Xen entry, which each test then spoils.
EspSnapshot bootable() {
  EspSnapshot snapshot;
  snapshot.entries["nixos-generation-1.conf"] =
      "title NixOS\nversion Generation 1\nlinux /" + kKernel + "\n";
  snapshot.entries["xen-generation-1.conf"] =
      "title NixOS (with Xen Hypervisor)\nefi /" + kImage + "\n";
  snapshot.images[kImage] = {"", config(), false, false};
  snapshot.files = {kKernel, kInitrd};
  snapshot.loader_conf = "timeout 3\ndefault xen-generation-1.conf\n";
  return snapshot;
}

std::vector<std::string> problems(const EspSnapshot& snapshot) {
  auto result = verify_snapshot(snapshot);
  std::vector<std::string> all;
  for (const auto& check : result.entries) {
    for (const auto& p : check.problems) all.push_back(check.entry + ": " + p);
  }
  for (const auto& p : result.loader_conf_problems) all.push_back("loader.conf: " + p);
  EXPECT_EQ(result.ok(), all.empty());
  return all;
}

TEST(Verify, ABootableEspHasNoProblems) {
  auto result = verify_snapshot(bootable());
  ASSERT_EQ(result.entries.size(), 1u);
  EXPECT_EQ(result.entries[0].entry, "xen-generation-1.conf");
  EXPECT_TRUE(result.ok());
}

TEST(Verify, NamesEachReasonAnEntryWouldNotBoot) {
  auto missing_image = bootable();
  missing_image.images.clear();
  EXPECT_EQ(problems(missing_image),
            std::vector<std::string>{"xen-generation-1.conf: image /" + kImage + " is missing"});

  auto broken_image = bootable();
  broken_image.images[kImage].problem = kImage + ": offset 0x0: not a PE image";
  EXPECT_EQ(problems(broken_image), std::vector<std::string>{"xen-generation-1.conf: " + kImage +
                                                             ": offset 0x0: not a PE image"});

  auto no_config = bootable();
  no_config.images[kImage].config.reset();
  EXPECT_EQ(problems(no_config), std::vector<std::string>{"xen-generation-1.conf: image /" +
                                                          kImage + " has no .config section"});

  auto no_kernel = bootable();
  no_kernel.files.erase(kKernel);
  EXPECT_EQ(
      problems(no_kernel),
      std::vector<std::string>{
          "xen-generation-1.conf: kernel \\EFI\\nixos\\k.efi is not on the ESP (" + kKernel + ")"});

  auto no_efi = bootable();
  no_efi.entries["xen-generation-1.conf"] = "title x\n";
  EXPECT_EQ(problems(no_efi),
            std::vector<std::string>{"xen-generation-1.conf: no absolute efi line"});

  auto unreadable = bootable();
  unreadable.entries.erase("xen-generation-1.conf");
  unreadable.unreadable_entries["xen-generation-1.conf"] =
      "/boot/loader/entries/xen-generation-1.conf: is a symlink";
  EXPECT_EQ(problems(unreadable).size(), 2u) << "the entry, and the default naming it";
}

TEST(Verify, EmbeddedKernelAndRamdiskNeedNoFiles) {
  auto embedded = bootable();
  embedded.files.clear();
  embedded.images[kImage].kernel = true;
  embedded.images[kImage].ramdisk = true;
  EXPECT_EQ(problems(embedded), std::vector<std::string>{});
  embedded.images[kImage].ramdisk = false;
  EXPECT_EQ(problems(embedded).size(), 1u);
}

TEST(Verify, AConfigurationXenWouldReadDifferentlyIsNotBootable) {
  auto snapshot = bootable();
  snapshot.images[kImage].config =
      "[global]\ndefault=nixos\n[nixos]\nkernel=\\EFI\\nixos\\k.efi caf\xc3\xa9\n";
  auto found = problems(snapshot);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NE(found[0].find("contains a byte outside ASCII"), std::string::npos) << found[0];
}

TEST(Verify, ChecksThatLoaderConfSelectsAnEntry) {
  auto glob = bootable();
  glob.loader_conf = "default xen-*\npreferred nixos-generation-1.conf\n";
  EXPECT_EQ(problems(glob), std::vector<std::string>{});

  auto stale = bootable();
  stale.loader_conf = "default xen-generation-7.conf\n";
  EXPECT_EQ(problems(stale), std::vector<std::string>{
                                 "loader.conf: default xen-generation-7.conf selects no entry"});

  auto bare = bootable();
  bare.loader_conf = "timeout 3\ndefault\n";
  EXPECT_EQ(problems(bare), std::vector<std::string>{})
      << "systemd-boot ignores a key without a value";

  auto unusable = bootable();
  unusable.loader_conf.reset();
  unusable.loader_conf_problem = "/boot/loader/loader.conf: is a folder, not a regular file";
  EXPECT_EQ(problems(unusable),
            std::vector<std::string>{"loader.conf: " + unusable.loader_conf_problem});
}

TEST(Verify, OnlyXenEntriesAreJudged) {
  auto snapshot = bootable();
  snapshot.entries["other.conf"] = "title Other\nefi /EFI/missing.efi\n";
  EXPECT_EQ(verify_snapshot(snapshot).entries.size(), 1u);
}

}  // namespace
}  // namespace xbb
