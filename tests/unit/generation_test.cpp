#include "xbb/generation.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "xbb/error.hpp"
#include "xbb/esp.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

class TempRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "xbb-generation-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  void TearDown() override { fs::remove_all(root_); }

  void write(const std::string& path, const std::string& text) {
    fs::path file = root_ / path;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
  }

  std::string boot_json(const std::string& toplevel, bool xen) {
    std::string doc = R"({"org.nixos.bootspec.v1":{"init":")" + toplevel +
                      R"(/init","initrd":"/nix/store/bbbb-initrd/initrd","kernel":"/nix/store/dddd-linux/bzImage","kernelParams":["quiet"],"label":"NixOS 25.11","system":"x86_64-linux","toplevel":")" +
                      toplevel + R"("}})";
    if (xen) {
      doc.pop_back();
      doc += R"(,"org.xenproject.bootspec.v2":{"efiPath":"/nix/store/ffff-xen/boot/xen.efi","params":["dom0_mem=1G"],"multibootPath":"/nix/store/ffff-xen/boot/xen","version":"4.17.7"}})";
    }
    return doc;
  }

  fs::path root_;
};

using HostPath = TempRoot;

TEST_F(HostPath, PutsStorePathsUnderTheRoot) {
  EXPECT_EQ(host_path(root_, "/nix/store/x/boot.json"), root_ / "nix/store/x/boot.json");
  EXPECT_EQ(host_path("/", "/nix/store/x"), fs::path("/nix/store/x"));
}

TEST_F(HostPath, FollowsAbsoluteSymlinksInsideTheRoot) {
  write("nix/store/aaaa-system/boot.json", "{}");
  fs::create_directories(root_ / "nix/var/nix/profiles");
  fs::create_symlink("/nix/store/aaaa-system", root_ / "nix/var/nix/profiles/system-1-link");
  fs::create_symlink("system-1-link", root_ / "nix/var/nix/profiles/system");
  EXPECT_EQ(host_path(root_, "/nix/var/nix/profiles/system/boot.json"),
            root_ / "nix/store/aaaa-system/boot.json");
}

TEST_F(HostPath, RefusesRelativePathsAndSymlinkLoops) {
  EXPECT_THROW(host_path(root_, "nix/store/x"), Error);
  fs::create_directories(root_ / "nix");
  fs::create_symlink("/nix/loop", root_ / "nix/loop");
  EXPECT_THROW(host_path(root_, "/nix/loop/x"), Error);
}

using Discovery = TempRoot;

TEST_F(Discovery, ReadsEachNixosEntryAndItsBootspec) {
  write("nix/store/aaaa-system-1/boot.json", boot_json("/nix/store/aaaa-system-1", true));
  write("nix/store/cccc-system-2/boot.json", boot_json("/nix/store/cccc-system-2", false));
  write("boot/loader/entries/nixos-generation-1.conf",
        "title NixOS\nversion Generation 1 NixOS 25.11\nlinux /EFI/nixos/k.efi\n"
        "initrd /EFI/nixos/i.efi\noptions init=/nix/store/aaaa-system-1/init quiet\n");
  write("boot/loader/entries/nixos-generation-2.conf",
        "title NixOS\nlinux /EFI/nixos/k.efi\noptions init=/nix/store/cccc-system-2/init quiet\n");
  write("boot/loader/entries/nixos-generation-3.conf",
        "title NixOS\nlinux /EFI/nixos/k.efi\noptions init=/nix/store/gone/init\n");
  write("boot/loader/entries/other.conf", "title Other\n");
  Esp esp(root_ / "boot");
  auto generations = generations_from_entries(esp, root_);
  ASSERT_EQ(generations.size(), 3u);
  EXPECT_EQ(generations[0].rest, "generation-1");
  EXPECT_EQ(generations[0].number, 1u);
  ASSERT_TRUE(generations[0].bootspec) << generations[0].problem;
  ASSERT_TRUE(generations[0].bootspec->xen);
  EXPECT_EQ(generations[0].xen_efi, root_ / "nix/store/ffff-xen/boot/xen.efi");
  EXPECT_EQ(generations[0].entry.initrds, std::vector<std::string>{"/EFI/nixos/i.efi"});
  ASSERT_TRUE(generations[1].bootspec);
  EXPECT_FALSE(generations[1].bootspec->xen);
  EXPECT_FALSE(generations[2].bootspec);
  EXPECT_NE(generations[2].problem.find("gone"), std::string::npos);
}

TEST_F(Discovery, ListsGenerationsInNumericOrderEachBeforeItsSpecialisations) {
  for (const char* name : {"generation-10", "generation-2-specialisation-debug", "generation-2",
                           "generation-1"}) {
    write(std::string("boot/loader/entries/nixos-") + name + ".conf", "title NixOS\n");
  }
  Esp esp(root_ / "boot");
  std::vector<std::string> order;
  for (const auto& generation : generations_from_entries(esp, root_)) order.push_back(generation.rest);
  EXPECT_EQ(order, (std::vector<std::string>{"generation-1", "generation-2",
                                             "generation-2-specialisation-debug", "generation-10"}));
}

TEST_F(Discovery, ReadsContentAddressedEntriesWithBootCounters) {
  write("nix/store/aaaa-system-1/boot.json", boot_json("/nix/store/aaaa-system-1", true));
  write("boot/loader/entries/nixos-0123abcd+2-1.conf",
        "title NixOS\nversion Generation 9 NixOS 25.11\nlinux /EFI/nixos/k.efi\n"
        "options init=/nix/store/aaaa-system-1/init quiet");
  Esp esp(root_ / "boot");
  auto generations = generations_from_entries(esp, root_);
  ASSERT_EQ(generations.size(), 1u);
  EXPECT_EQ(generations[0].rest, "0123abcd");
  ASSERT_TRUE(generations[0].counter);
  EXPECT_EQ(generations[0].counter->left, 2u);
  EXPECT_EQ(generations[0].counter->done, 1u);
  EXPECT_EQ(generations[0].number, 9u);
  EXPECT_TRUE(generations[0].bootspec);
}

TEST_F(Discovery, ReadsProfilesAndTheirSpecialisations) {
  std::string child = boot_json("/nix/store/eeee-system-debug", true);
  std::string parent = boot_json("/nix/store/aaaa-system-1", true);
  parent.pop_back();
  parent += R"(,"org.nixos.specialisation.v1":{"debug":)" + child + "}}";
  write("nix/store/aaaa-system-1/boot.json", parent);
  write("nix/store/cccc-system-2/boot.json", boot_json("/nix/store/cccc-system-2", true));
  fs::create_directories(root_ / "nix/var/nix/profiles/system-profiles");
  fs::create_symlink("/nix/store/aaaa-system-1", root_ / "nix/var/nix/profiles/system-1-link");
  fs::create_symlink("/nix/store/cccc-system-2",
                     root_ / "nix/var/nix/profiles/system-profiles/lab-2-link");
  auto generations = generations_from_profiles(root_);
  ASSERT_EQ(generations.size(), 3u);
  EXPECT_EQ(generations[0].rest, "generation-1");
  EXPECT_EQ(generations[0].entry.title, "NixOS");
  EXPECT_EQ(generations[0].entry.version, "Generation 1 NixOS 25.11");
  EXPECT_TRUE(generations[0].embed_kernel);
  EXPECT_EQ(generations[0].kernel_file, root_ / "nix/store/dddd-linux/bzImage");
  EXPECT_EQ(generations[1].rest, "generation-1-specialisation-debug");
  EXPECT_EQ(generations[1].entry.title, "NixOS (debug)");
  EXPECT_EQ(generations[1].bootspec->init, "/nix/store/eeee-system-debug/init");
  EXPECT_EQ(generations[2].rest, "lab-generation-2");
  EXPECT_EQ(generations[2].entry.title, "NixOS [lab]");
}

}  // namespace
}  // namespace xbb
