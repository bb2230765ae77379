// The helpers every input goes through: host files read with a type check
// and a size limit, text rules, and the names the layout derives.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "posix_io.hpp"
#include "text.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

class HostFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "xbb-input-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    folder_ = pattern;
  }
  void TearDown() override { fs::remove_all(folder_); }

  fs::path write(const std::string& name, const std::string& bytes) {
    std::ofstream(folder_ / name, std::ios::binary) << bytes;
    return folder_ / name;
  }

  static std::string error_of(const std::function<void()>& action) {
    try {
      action();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path folder_;
};

TEST_F(HostFiles, ReadsARegularFileWithinItsLimit) {
  fs::path file = write("boot.json", "{}");
  EXPECT_EQ(posix::read_host_file(file, 2, "bootspec"), "{}");
  EXPECT_EQ(error_of([&] { posix::read_host_file(file, 1, "bootspec"); }),
            file.string() + ": 2 bytes, more than the 1 a bootspec may have");
  EXPECT_EQ(posix::host_file_stamp(file, 2, "bootspec").size, 2u);
}

// A FIFO would block the run while it holds the ESP lock; a character device
// would be read without end. Both are refused before any read.
TEST_F(HostFiles, RefusesFifosDevicesAndFoldersAtOnce) {
  ASSERT_EQ(::mkfifo((folder_ / "fifo").c_str(), 0644), 0);
  EXPECT_EQ(error_of([&] { posix::read_host_file(folder_ / "fifo", 1 << 20, "bootspec"); }),
            (folder_ / "fifo").string() + ": is a FIFO, not a regular file");
  EXPECT_EQ(error_of([&] { posix::read_host_file("/dev/zero", 1 << 20, "Xen image"); }),
            "/dev/zero: is a character device, not a regular file");
  EXPECT_EQ(error_of([&] { posix::host_file_stamp(folder_, 1 << 20, "kernel"); }),
            folder_.string() + ": is a folder, not a regular file");
  EXPECT_NE(
      error_of([&] { posix::read_host_file(folder_ / "missing", 1, "x"); }).find("cannot open"),
      std::string::npos);
}

TEST_F(HostFiles, ChecksTheStartOfAFileBeforeReadingTheRest) {
  fs::path file = write("image", "MZrest of the file");
  std::string seen;
  std::uint64_t size = 0;
  EXPECT_EQ(posix::read_host_file(file, 100, "image", 2,
                                  [&](std::string_view start, std::uint64_t file_size) {
                                    seen = start;
                                    size = file_size;
                                  }),
            "MZrest of the file");
  EXPECT_EQ(seen, "MZ");
  EXPECT_EQ(size, 18u);
  fs::path sparse = folder_ / "sparse";
  { std::ofstream(sparse, std::ios::binary) << "ELF"; }
  fs::resize_file(sparse, 1 << 30);
  EXPECT_EQ(error_of([&] {
              posix::read_host_file(sparse, 2ull << 30, "image", 4,
                                    [](std::string_view start, std::uint64_t) {
                                      if (!start.starts_with("MZ")) throw Error("no MZ");
                                    });
            }),
            "no MZ");
}

TEST(Text, TrimsSplitsAndEscapes) {
  EXPECT_EQ(text::trim_blanks(" \ta b\t "), "a b");
  EXPECT_EQ(text::split_first_word("  key  some value "),
            (std::pair<std::string_view, std::string_view>{"key", "some value"}));
  EXPECT_EQ(text::split("/a//b", '/'), (std::vector<std::string_view>{"", "a", "", "b"}));
  EXPECT_EQ(text::printable("a\nb\xc3"), "a\\x0ab\\xc3");
  EXPECT_EQ(text::line_break_problem("a\rb"), "contains a carriage return");
  EXPECT_EQ(text::line_break_problem(std::string_view("a\0b", 3)), "contains a NUL byte");
  EXPECT_EQ(text::line_break_problem("ab"), std::nullopt);
}

TEST(Layout, DerivesNamesThatFitFat) {
  std::string why;
  EXPECT_EQ(layout::xen_stem("generation-42", why), "xen-generation-42");
  const std::string longest(layout::kMaxRestLength, 'a');
  ASSERT_EQ(layout::xen_stem(longest, why), "xen-" + longest);
  // The longest name it derives, a counted entry's temporary, fits 255 bytes.
  EXPECT_EQ(("xen-" + longest + "+4294967295.conf.xbb-tmp-0123456789abcdef").size(), 255u);
  EXPECT_EQ(layout::xen_stem(longest + "a", why), std::nullopt);
  EXPECT_EQ(layout::xen_stem("", why), std::nullopt);
  EXPECT_EQ(layout::xen_stem("a;b", why), std::nullopt);
  EXPECT_EQ(layout::entry_path("xen-abc", std::nullopt), "loader/entries/xen-abc.conf");
  EXPECT_EQ(layout::entry_path("xen-abc", BootCounter{2, 1}), "loader/entries/xen-abc+3.conf");
}

TEST(Layout, NamesTheFilesOfAnEntryInEachLayout) {
  const std::string digest = "3fa9c2d1" + std::string(56, '0');
  auto unified = layout::entry_files(layout::Kind::unified, "xen-abc", "4.17.7", digest);
  EXPECT_EQ(unified.image, "EFI/xen/xen-abc.efi");
  EXPECT_EQ(unified.config, std::nullopt);
  EXPECT_EQ(unified.options, std::nullopt);
  auto shared = layout::entry_files(layout::Kind::shared, "xen-abc", "4.17.7", digest);
  EXPECT_EQ(shared.image, "EFI/xen/xen-4.17.7-3fa9c2d1.efi");
  EXPECT_EQ(shared.config, "EFI/xen/xen-abc.cfg");
  EXPECT_EQ(shared.options, "xen-4.17.7-3fa9c2d1.efi -cfg=xen-abc.cfg");
  // A version that is no file name is left out of it.
  EXPECT_EQ(layout::entry_files(layout::Kind::shared, "xen-abc", "", digest).image,
            "EFI/xen/xen-3fa9c2d1.efi");
  EXPECT_EQ(layout::entry_files(layout::Kind::shared, "xen-abc", "4.17 (x)", digest).image,
            "EFI/xen/xen-3fa9c2d1.efi");
}

TEST(Layout, AutoChoosesByWhatTheImageMustCarry) {
  using layout::Kind;
  const layout::Request automatic;
  EXPECT_EQ(layout::choose(automatic, false).kind, Kind::shared);
  EXPECT_EQ(layout::choose(automatic, true).kind, Kind::unified);
  EXPECT_EQ(layout::choose({std::nullopt, true, false}, false).kind, Kind::self_contained);
  EXPECT_EQ(layout::choose({std::nullopt, false, true}, true).kind, Kind::self_contained);
  const layout::Choice asked = layout::choose({Kind::unified, false, false}, false);
  EXPECT_EQ(asked.kind, Kind::unified);
  EXPECT_EQ(asked.reason, "--layout unified");
  EXPECT_TRUE(layout::may_share(automatic));
  EXPECT_FALSE(layout::may_share({std::nullopt, true, false}));
  EXPECT_FALSE(layout::may_share({Kind::unified, false, false}));
  EXPECT_FALSE(layout::embeds_kernel(automatic));
  EXPECT_TRUE(layout::embeds_kernel({std::nullopt, false, true}));
  EXPECT_TRUE(layout::embeds_kernel({Kind::self_contained, false, false}));
}

TEST(Layout, OnlyAnImageThatCarriesItsConfigurationCanBeSigned) {
  using layout::Kind;
  for (Kind kind : {Kind::unified, Kind::shared, Kind::self_contained}) {
    const layout::Policy& policy = layout::policy(kind);
    EXPECT_EQ(policy.kind, kind);
    EXPECT_EQ(policy.signable, policy.embeds_config) << layout::kind_name(kind);
    EXPECT_EQ(policy.shares_image, !policy.embeds_config) << layout::kind_name(kind);
  }
  EXPECT_TRUE(layout::policy(Kind::self_contained).embeds_kernel);
  EXPECT_FALSE(layout::policy(Kind::unified).embeds_kernel);
}

TEST(Layout, RecognisesSharedImageNames) {
  EXPECT_EQ(layout::shared_image_digest("xen-4.17.7-3fa9c2d1.efi"), "3fa9c2d1");
  EXPECT_EQ(layout::shared_image_digest("xen-3fa9c2d1.efi"), "3fa9c2d1");
  EXPECT_EQ(layout::shared_image_digest("xen-generation-42.efi"), std::nullopt);
  EXPECT_EQ(layout::shared_image_digest("xen-4.17.73fa9c2d1.efi"), std::nullopt);
  EXPECT_EQ(layout::shared_image_digest("xen-4.17.7-3FA9C2D1.efi"), std::nullopt);
  EXPECT_EQ(layout::shared_image_digest("xen-abc.cfg"), std::nullopt);
}

// Xen's own rules (xen/common/efi/boot.c): the first word of the load
// options is the image name; -cfg=<file> or -cfg <file> names the
// configuration, relative to the image's folder; without one, <image>.cfg
// and shorter names cut at '.', '-' and '_' are tried.
TEST(Layout, FindsTheConfigurationAsXenDoes) {
  auto given = layout::config_lookup("EFI/xen/xen-4.17.7-3fa9c2d1.efi", "xen.efi -cfg=xen-abc.cfg");
  EXPECT_EQ(given.file, "EFI/xen/xen-abc.cfg");
  EXPECT_EQ(layout::config_lookup("EFI/xen/x.efi", "any -basevideo -cfg ..\\nixos\\a.cfg").file,
            "EFI/nixos/a.cfg");
  EXPECT_EQ(layout::config_lookup("EFI/xen/x.efi", "-cfg=skipped.cfg").file, std::nullopt)
      << "the first word is the image name";
  EXPECT_EQ(layout::config_lookup("EFI/xen/x.efi", "x -- -cfg=a.cfg").file, std::nullopt);
  auto searched = layout::config_lookup("EFI/xen/xen-4.2-unstable.efi", std::nullopt);
  EXPECT_EQ(searched.file, std::nullopt);
  EXPECT_EQ(searched.candidates,
            (std::vector<std::string>{"EFI/xen/xen-4.2-unstable.cfg", "EFI/xen/xen-4.2.cfg",
                                      "EFI/xen/xen-4.cfg", "EFI/xen/xen.cfg"}));
}

TEST(Layout, AnEntryUsesItsImageAndItsConfigurationFile) {
  LoaderEntry entry;
  entry.efi = "/EFI/xen/xen-4.17.7-3fa9c2d1.efi";
  entry.options = "xen-4.17.7-3fa9c2d1.efi -cfg=xen-abc.cfg";
  EXPECT_EQ(layout::files_of(entry),
            (std::vector<std::string>{"EFI/xen/xen-4.17.7-3fa9c2d1.efi", "EFI/xen/xen-abc.cfg"}));
  entry.options.reset();
  EXPECT_EQ(layout::files_of(entry), std::vector<std::string>{"EFI/xen/xen-4.17.7-3fa9c2d1.efi"});
  EXPECT_EQ(layout::files_of(LoaderEntry{}), std::vector<std::string>{});
}

TEST(Layout, TellsItsOwnTextsByTheirFirstLine) {
  const std::string marker(layout::kMarker);
  EXPECT_TRUE(layout::is_marked(marker + "\ntitle x\n"));
  EXPECT_TRUE(layout::is_marked(marker + "\r\ntitle x\n"));
  EXPECT_FALSE(layout::is_marked(marker));
  EXPECT_FALSE(layout::is_marked(marker + " and more\n"));
  EXPECT_FALSE(layout::is_marked("title x\n" + marker + "\n"));
}

}  // namespace
}  // namespace xbb
