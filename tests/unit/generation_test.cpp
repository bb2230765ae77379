#include "xbb/generation.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <tuple>

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
    std::string doc =
        R"({"org.nixos.bootspec.v1":{"init":")" + toplevel +
        R"(/init","initrd":"/nix/store/bbbb-initrd/initrd","kernel":"/nix/store/dddd-linux/bzImage","kernelParams":["quiet"],"label":"NixOS 25.11","system":"x86_64-linux","toplevel":")" +
        toplevel + R"("}})";
    if (xen) {
      doc.pop_back();
      doc +=
          R"(,"org.xenproject.bootspec.v2":{"efiPath":"/nix/store/ffff-xen/boot/xen.efi","params":["dom0_mem=1G"],"multibootPath":"/nix/store/ffff-xen/boot/xen","version":"4.17.7"}})";
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

// Issue 18: HostPaths gives host_path's answer, with openat2 first or
// without it (a kernel or seccomp filter that lacks it): a ".." or a symlink
// that would leave --root stays inside it, symlinks are followed, a missing
// file is named where it would be.
class HostPathsTest : public TempRoot, public ::testing::WithParamInterface<HostPaths::Lookup> {};

TEST_P(HostPathsTest, GiveHostPathsAnswer) {
  write("nix/store/aaaa-xen/boot/xen.efi", "MZ");
  write("nix/store/bbbb-system/boot.json", "{}");
  write("etc/passwd", "inside the root");
  fs::create_directories(root_ / "nix/var/nix/profiles");
  fs::create_symlink("/nix/store/bbbb-system", root_ / "nix/var/nix/profiles/system-1-link");
  fs::create_symlink("system-1-link", root_ / "nix/var/nix/profiles/system");
  fs::create_symlink("../../../../../../../../etc", root_ / "nix/store/cccc-escape");
  fs::create_symlink("/etc/passwd", root_ / "nix/store/dddd-absolute");
  fs::create_symlink("aaaa-xen/boot/xen.efi", root_ / "nix/store/eeee-last");
  HostPaths paths(root_, GetParam());
  const std::vector<std::pair<std::string, fs::path>> cases = {
      {"/nix/store/aaaa-xen/boot/xen.efi", root_ / "nix/store/aaaa-xen/boot/xen.efi"},
      {"//nix/./store/aaaa-xen//boot/xen.efi", root_ / "nix/store/aaaa-xen/boot/xen.efi"},
      {"/../../nix/store/aaaa-xen/boot/xen.efi", root_ / "nix/store/aaaa-xen/boot/xen.efi"},
      {"/nix/store/../../../etc/passwd", root_ / "etc/passwd"},
      {"/nix/store/cccc-escape/passwd", root_ / "etc/passwd"},
      {"/nix/store/dddd-absolute", root_ / "etc/passwd"},
      {"/nix/store/eeee-last", root_ / "nix/store/aaaa-xen/boot/xen.efi"},
      {"/nix/var/nix/profiles/system/boot.json", root_ / "nix/store/bbbb-system/boot.json"},
      {"/nix/store/ffff-missing/boot.json", root_ / "nix/store/ffff-missing/boot.json"},
      {"/nix/store/aaaa-xen/boot/xen.efi/below", root_ / "nix/store/aaaa-xen/boot/xen.efi/below"},
  };
  for (const auto& [path, expected] : cases) {
    EXPECT_EQ(host_path(root_, path), expected) << path;
    EXPECT_EQ(paths.resolve(path), expected) << path;
    EXPECT_EQ(paths.resolve(path), expected) << path << " (asked again)";
  }
  EXPECT_EQ(paths.root(), root_);
}

TEST_P(HostPathsTest, RefuseWhatHostPathRefuses) {
  fs::create_directories(root_ / "nix");
  fs::create_symlink("/nix/loop", root_ / "nix/loop");
  HostPaths paths(root_, GetParam());
  EXPECT_THROW(paths.resolve("nix/store/x"), Error);
  EXPECT_THROW(paths.resolve("/nix/loop/x"), Error);
  EXPECT_THROW(paths.resolve(""), Error);
}

TEST_P(HostPathsTest, UnderTheSystemRootAreThePathsThemselves) {
  HostPaths paths("/", GetParam());
  EXPECT_EQ(paths.resolve("/nix/store/x/../y"), fs::path("/nix/store/x/../y"));
}

INSTANTIATE_TEST_SUITE_P(Lookups, HostPathsTest,
                         ::testing::Values(HostPaths::Lookup::openat2_first,
                                           HostPaths::Lookup::walk),
                         [](const auto& info) {
                           return info.param == HostPaths::Lookup::walk ? "Walk" : "Openat2First";
                         });

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
  EXPECT_EQ(generations[0].xen_efi.path, root_ / "nix/store/ffff-xen/boot/xen.efi");
  EXPECT_EQ(generations[0].entry.initrds, std::vector<std::string>{"/EFI/nixos/i.efi"});
  ASSERT_TRUE(generations[1].bootspec);
  EXPECT_FALSE(generations[1].bootspec->xen);
  EXPECT_FALSE(generations[2].bootspec);
  EXPECT_NE(generations[2].problem.find("gone"), std::string::npos);
}

TEST_F(Discovery, ListsGenerationsInNumericOrderEachBeforeItsSpecialisations) {
  for (const char* name :
       {"generation-10", "generation-2-specialisation-debug", "generation-2", "generation-1"}) {
    write(std::string("boot/loader/entries/nixos-") + name + ".conf", "title NixOS\n");
  }
  Esp esp(root_ / "boot");
  std::vector<std::string> order;
  for (const auto& generation : generations_from_entries(esp, root_))
    order.push_back(generation.rest);
  EXPECT_EQ(order,
            (std::vector<std::string>{"generation-1", "generation-2",
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
  write("nix/store/dddd-linux/bzImage", "kernel");
  write("nix/store/bbbb-initrd/initrd", "initrd");
  fs::create_directories(root_ / "nix/var/nix/profiles/system-profiles");
  fs::create_symlink("/nix/store/aaaa-system-1", root_ / "nix/var/nix/profiles/system-1-link");
  fs::create_symlink("/nix/store/cccc-system-2",
                     root_ / "nix/var/nix/profiles/system-profiles/lab-2-link");
  auto generations = generations_from_profiles(root_);
  ASSERT_EQ(generations.size(), 3u);
  EXPECT_EQ(generations[0].rest, "generation-1");
  EXPECT_EQ(generations[0].entry.title, "NixOS");
  EXPECT_EQ(generations[0].entry.version, "Generation 1 NixOS 25.11");
  EXPECT_EQ(generations[0].kernel_file.path, root_ / "nix/store/dddd-linux/bzImage");
  EXPECT_EQ(generations[1].rest, "generation-1-specialisation-debug");
  EXPECT_EQ(generations[1].entry.title, "NixOS (debug)");
  ASSERT_TRUE(generations[1].bootspec) << generations[1].problem;
  EXPECT_EQ(generations[1].bootspec->init, "/nix/store/eeee-system-debug/init");
  EXPECT_EQ(generations[2].rest, "lab-generation-2");
  EXPECT_EQ(generations[2].entry.title, "NixOS [lab]");
}

// A source entry's specialisations have entries of their own: its
// generation holds none of their bootspecs (read or from the record).
TEST_F(Discovery, AnEntrysGenerationKeepsNoSpecialisations) {
  std::string parent = boot_json("/nix/store/aaaa-system-1", true);
  parent.pop_back();
  parent += R"(,"org.nixos.specialisation.v1":{"debug":)" +
            boot_json("/nix/store/eeee-system-debug", true) + R"(,"broken":{}}})";
  write("nix/store/aaaa-system-1/boot.json", parent);
  write("boot/loader/entries/nixos-generation-1.conf",
        "title NixOS\nlinux /EFI/nixos/k.efi\noptions init=/nix/store/aaaa-system-1/init\n");
  Esp esp(root_ / "boot");
  const auto read = generations_from_entries(esp, root_);
  ASSERT_EQ(read.size(), 1u);
  ASSERT_TRUE(read[0].bootspec) << read[0].problem;
  EXPECT_EQ(read[0].bootspec->toplevel, "/nix/store/aaaa-system-1");
  EXPECT_TRUE(read[0].bootspec->specialisations.empty());
  EXPECT_TRUE(read[0].bootspec->broken_specialisations.empty());
  ASSERT_TRUE(read[0].known);
  KnownBootspecs recorded{*read[0].known};
  recorded.begin()->second.spec =
      std::make_shared<const Bootspec>(parse_bootspec(parent, recorded.begin()->second.file));
  ASSERT_EQ(recorded.begin()->second.spec->specialisations.size(), 1u);
  const auto again = generations_from_entries(esp, root_, recorded);
  ASSERT_EQ(again.size(), 1u);
  ASSERT_TRUE(again[0].bootspec) << again[0].problem;
  EXPECT_TRUE(again[0].bootspec->specialisations.empty());
  EXPECT_TRUE(again[0].bootspec->broken_specialisations.empty());
}

// Every way an entry can fail to name its generation costs only that entry.
TEST_F(Discovery, ExplainsEntriesThatNameNoUsableGeneration) {
  write("nix/store/aaaa-system-1/boot.json", boot_json("/nix/store/aaaa-system-1", true));
  fs::create_directories(root_ / "nix/store/ffff-fifo");
  ASSERT_EQ(::mkfifo((root_ / "nix/store/ffff-fifo/boot.json").c_str(), 0644), 0);
  write("nix/store/gggg-huge/boot.json", std::string((1 << 20) + 1, ' '));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"two-inits", "options init=/nix/store/gone/init init=/nix/store/aaaa-system-1/init\n"},
      {"dotdot", "options init=/nix/store/../store/aaaa-system-1/init\n"},
      {"outside", "options init=/etc/aaaa-system-1/init\n"},
      {"sbin", "options init=/nix/store/aaaa-system-1/sbin/init\n"},
      {"bare", "options init=/nix/store/init\n"},
      {"none", "options quiet\n"},
      {"fifo", "options init=/nix/store/ffff-fifo/init\n"},
      {"huge", "options init=/nix/store/gggg-huge/init\n"},
  };
  for (const auto& [name, options] : cases) {
    write("boot/loader/entries/nixos-" + name + ".conf",
          "title NixOS\nlinux /EFI/nixos/k.efi\n" + options);
  }
  fs::create_directories(root_ / "boot/loader/entries/nixos-folder.conf");
  Esp esp(root_ / "boot");
  std::map<std::string, std::string> problems;
  for (const auto& generation : generations_from_entries(esp, root_)) {
    if (generation.bootspec) {
      problems[generation.rest] = "ok";
    } else {
      problems[generation.rest] = generation.problem;
    }
  }
  const std::string entries = "loader/entries/nixos-";
  EXPECT_EQ(problems["two-inits"], "ok") << "Linux uses the last init=";
  EXPECT_EQ(problems["dotdot"], entries +
                                    "dotdot.conf: init=/nix/store/../store/aaaa-system-1/init has "
                                    "an empty, '.' or '..' component");
  EXPECT_EQ(problems["outside"],
            entries + "outside.conf: init=/etc/aaaa-system-1/init is outside /nix/store/");
  EXPECT_EQ(
      problems["sbin"],
      entries +
          "sbin.conf: init=/nix/store/aaaa-system-1/sbin/init is not /nix/store/<toplevel>/init");
  EXPECT_EQ(problems["bare"],
            entries + "bare.conf: init=/nix/store/init is not /nix/store/<toplevel>/init");
  EXPECT_EQ(problems["none"], entries + "none.conf: options line has no init=<toplevel>/init");
  EXPECT_EQ(problems["fifo"],
            (root_ / "nix/store/ffff-fifo/boot.json").string() + ": is a FIFO, not a regular file");
  EXPECT_EQ(problems["huge"], (root_ / "nix/store/gggg-huge/boot.json").string() +
                                  ": 1048577 bytes, more than the 1048576 a bootspec may have");
  EXPECT_EQ(problems["folder"], entries + "folder.conf: is a folder or special file, not an entry");
}

// A generation found at `source` (an entry file or a profile link).
Generation found(const std::string& source, const std::string& rest) {
  Generation generation;
  generation.source = source;
  generation.rest = rest;
  auto name = parse_entry_name(fs::path(source).filename().string());
  if (name) generation.counter = name->counter;
  return generation;
}

std::vector<std::string> sources_of(const std::vector<Generation>& generations) {
  std::vector<std::string> sources;
  for (const auto& generation : generations) sources.push_back(generation.source);
  return sources;
}

TEST(SameXenName, KeepsTheEntrySystemdBootListsFirst) {
  const std::string plain = "loader/entries/nixos-generation-3.conf";
  const std::string counted = "loader/entries/nixos-generation-3+2-1.conf";
  const std::string spent = "loader/entries/nixos-generation-3+0-3.conf";
  for (const auto& [a, b, kept] : {std::tuple{plain, counted, counted},
                                   {counted, plain, counted},
                                   {plain, spent, plain},
                                   {spent, plain, plain}}) {
    std::vector<Generation> generations{
        found(a, "generation-3"), found(b, "generation-3"),
        found("loader/entries/nixos-generation-4.conf", "generation-4")};
    const auto warnings = keep_one_per_xen_name(generations);
    EXPECT_EQ(sources_of(generations),
              (std::vector<std::string>{kept, "loader/entries/nixos-generation-4.conf"}));
    const std::string& lost = kept == a ? b : a;
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_EQ(warnings[0], lost + " and " + kept +
                               " give the same Xen entry name xen-generation-3; skipped " + lost +
                               ", kept " + kept + " (systemd-boot lists it first)");
  }
}

TEST(SameXenName, KeepsTheFirstProfileLinkByNameOnATie) {
  const std::string five = "/nix/var/nix/profiles/system-5-link";
  const std::string zero_five = "/nix/var/nix/profiles/system-05-link";
  for (bool swapped : {false, true}) {
    std::vector<Generation> generations{found(five, "generation-5"),
                                        found(zero_five, "generation-5")};
    if (swapped) std::swap(generations[0], generations[1]);
    const auto warnings = keep_one_per_xen_name(generations);
    EXPECT_EQ(sources_of(generations), std::vector<std::string>{zero_five});
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find(five), std::string::npos) << warnings[0];
    EXPECT_NE(warnings[0].find(zero_five), std::string::npos) << warnings[0];
  }
}

// FAT folds case: xen-...-Debug.efi and xen-...-debug.efi are one file.
TEST(SameXenName, ComparesNamesIgnoringCase) {
  std::vector<Generation> generations{
      found("loader/entries/nixos-generation-1-specialisation-debug.conf",
            "generation-1-specialisation-debug"),
      found("loader/entries/nixos-generation-1-specialisation-Debug.conf",
            "generation-1-specialisation-Debug")};
  EXPECT_EQ(keep_one_per_xen_name(generations).size(), 1u);
  EXPECT_EQ(generations.size(), 1u);
}

TEST(SameXenName, NamesTheOneKeptInEveryWarningOfAGroup) {
  const std::string kept = "loader/entries/nixos-generation-7+3.conf";
  std::vector<Generation> generations{
      found("loader/entries/nixos-generation-7.conf", "generation-7"),
      found("loader/entries/nixos-generation-7+1.conf", "generation-7"),
      found(kept, "generation-7")};
  const auto warnings = keep_one_per_xen_name(generations);
  EXPECT_EQ(sources_of(generations), std::vector<std::string>{kept});
  ASSERT_EQ(warnings.size(), 2u);
  for (const auto& warning : warnings) EXPECT_NE(warning.find(", kept " + kept), std::string::npos);
}

TEST(SameXenName, LeavesDistinctNamesAlone) {
  std::vector<Generation> generations{
      found("loader/entries/nixos-generation-1.conf", "generation-1"),
      found("loader/entries/nixos-generation-10.conf", "generation-10")};
  EXPECT_TRUE(keep_one_per_xen_name(generations).empty());
  EXPECT_EQ(generations.size(), 2u);
}

}  // namespace
}  // namespace xbb
