#include "xbb/loader_entry.hpp"

#include <gtest/gtest.h>

#include "xbb/error.hpp"
#include "xbb/layout.hpp"

namespace {

const std::string kOrigin = "/boot/loader/entries/nixos-generation-42.conf";
const std::string kMarker(xbb::layout::kMarker);

std::string parse_error(std::string_view text) {
  try {
    xbb::parse_loader_entry(text, kOrigin);
  } catch (const xbb::Error& error) {
    return error.what();
  }
  return "";
}

// --- file names -------------------------------------------------------------

TEST(EntryName, GenerationNameHasNoCounter) {
  auto name = xbb::parse_entry_name("nixos-generation-42.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-generation-42");
  EXPECT_FALSE(name->counter.has_value());
}

TEST(EntryName, ProfileAndSpecialisationName) {
  auto name = xbb::parse_entry_name("nixos-work-generation-7-specialisation-debug.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-work-generation-7-specialisation-debug");
  EXPECT_FALSE(name->counter.has_value());
}

TEST(EntryName, CounterWithLeftAndDone) {
  auto name = xbb::parse_entry_name("nixos-abc+3-1.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-abc");
  ASSERT_TRUE(name->counter.has_value());
  EXPECT_EQ(name->counter->left, 3u);
  EXPECT_EQ(name->counter->done, 1u);
}

TEST(EntryName, CounterWithLeftOnly) {
  auto name = xbb::parse_entry_name(
      "nixos-0b4e5f6a7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081+5.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-0b4e5f6a7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081");
  ASSERT_TRUE(name->counter.has_value());
  EXPECT_EQ(name->counter->left, 5u);
  EXPECT_FALSE(name->counter->done.has_value());
}

TEST(EntryName, ZeroLeftIsACounter) {
  auto name = xbb::parse_entry_name("nixos-abc+0-3.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-abc");
  EXPECT_EQ(name->counter->left, 0u);
  EXPECT_EQ(name->counter->done, 3u);
}

TEST(EntryName, KeepsDigitWidths) {
  auto name = xbb::parse_entry_name("nixos-abc+09-01.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-abc");
  EXPECT_EQ(name->counter->left, 9u);
  EXPECT_EQ(name->counter->left_width, 2u);
  EXPECT_EQ(name->counter->done, 1u);
  EXPECT_EQ(name->counter->done_width, 2u);
}

TEST(EntryName, MalformedCounterStaysInTheStem) {
  const std::pair<const char*, const char*> cases[] = {
      {"nixos-abc+x.conf", "nixos-abc+x"},
      {"nixos-abc+.conf", "nixos-abc+"},
      {"nixos-abc+3-.conf", "nixos-abc+3-"},
      {"nixos-abc+-1.conf", "nixos-abc+-1"},
      {"nixos-abc+3-1-2.conf", "nixos-abc+3-1-2"},
      {"nixos-abc+3x.conf", "nixos-abc+3x"},
      {"nixos-abc+99999999999999999999.conf", "nixos-abc+99999999999999999999"},
  };
  for (const auto& [filename, stem] : cases) {
    auto name = xbb::parse_entry_name(filename);
    ASSERT_TRUE(name.has_value()) << filename;
    EXPECT_EQ(name->stem, stem) << filename;
    EXPECT_FALSE(name->counter.has_value()) << filename;
  }
}

TEST(EntryName, OnlyTheLastPlusStartsACounter) {
  auto name = xbb::parse_entry_name("nixos-a+1+2.conf");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, "nixos-a+1");
  EXPECT_EQ(name->counter->left, 2u);
}

TEST(EntryName, RejectsNamesThatAreNotEntries) {
  const std::string too_long = std::string(251, 'a') + ".conf";  // 256 characters
  for (std::string filename :
       {std::string(""), std::string(".conf"), std::string("+3.conf"), std::string("+3-1.conf"),
        std::string("nixos-abc"), std::string("nixos-abc.conf.tmp"), std::string("nixos-abc.CONF"),
        std::string("nixos abc.conf"), std::string("../nixos.conf"), std::string("a/b.conf"),
        std::string("nixos-\xc3\xa9.conf"), std::string("nixos\n.conf"),
        std::string("nixos\0.conf", 11), too_long}) {
    EXPECT_FALSE(xbb::parse_entry_name(filename).has_value()) << filename;
  }
}

TEST(EntryName, AcceptsTheLongestName) {
  const std::string longest = std::string(250, 'a') + ".conf";  // 255 characters
  auto name = xbb::parse_entry_name(longest);
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(name->stem, std::string(250, 'a'));
}

TEST(EntryName, FilenameRoundTripsExactly) {
  for (const char* filename : {"nixos-generation-42.conf", "nixos-abc+3-1.conf", "nixos-abc+3.conf",
                               "nixos-abc+09-01.conf", "nixos-abc+007.conf", "nixos-abc+x.conf",
                               "nixos-abc+3-.conf", "nixos-a+1+2.conf", "x.y_z.conf"}) {
    auto name = xbb::parse_entry_name(filename);
    ASSERT_TRUE(name.has_value()) << filename;
    EXPECT_EQ(name->filename(), filename);
  }
}

TEST(EntryName, FilenameOfBuiltNames) {
  EXPECT_EQ((xbb::EntryName{"xen-abc", std::nullopt}.filename()), "xen-abc.conf");
  EXPECT_EQ((xbb::EntryName{"xen-abc", xbb::BootCounter{3, std::nullopt}}.filename()),
            "xen-abc+3.conf");
  EXPECT_EQ((xbb::EntryName{"xen-abc", xbb::BootCounter{3, 0}}.filename()), "xen-abc+3-0.conf");
  EXPECT_EQ((xbb::EntryName{"xen-abc", xbb::BootCounter{12, 4}}.filename()), "xen-abc+12-4.conf");
  EXPECT_EQ((xbb::EntryName{"xen-abc", xbb::BootCounter{9, 1, 2, 1}}.filename()),
            "xen-abc+09-1.conf");
  EXPECT_EQ((xbb::EntryName{"xen-abc", xbb::BootCounter{100, 1, 2, 3}}.filename()),
            "xen-abc+100-001.conf");
}

// --- entry text ---------------------------------------------------------------

// background.md 2A: the entry the generation-named builder writes.
const char* const kGenerationEntry =
    "title NixOS\n"
    "sort-key nixos\n"
    "version Generation 42 NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7), built on "
    "2025-11-02\n"
    "linux /EFI/nixos/dddd-linux-6.12.7-bzImage.efi\n"
    "initrd /EFI/nixos/bbbb-initrd-linux-6.12.7-initrd.efi\n"
    "options init=/nix/store/aaaa-nixos-system-hv-25.11.20251101.abc1234/init loglevel=4 "
    "console=hvc0\n"
    "machine-id 4098b3f648d74c13b1f04ccfba7798e8\n";

TEST(LoaderEntry, ReadsTheGenerationNamedEntry) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry(kGenerationEntry, kOrigin);
  EXPECT_EQ(entry.title, "NixOS");
  EXPECT_EQ(entry.sort_key, "nixos");
  EXPECT_EQ(
      entry.version,
      "Generation 42 NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7), built on 2025-11-02");
  EXPECT_EQ(entry.kernel, "/EFI/nixos/dddd-linux-6.12.7-bzImage.efi");
  EXPECT_EQ(entry.initrds,
            std::vector<std::string>{"/EFI/nixos/bbbb-initrd-linux-6.12.7-initrd.efi"});
  EXPECT_EQ(
      entry.options,
      "init=/nix/store/aaaa-nixos-system-hv-25.11.20251101.abc1234/init loglevel=4 console=hvc0");
  EXPECT_EQ(entry.machine_id, "4098b3f648d74c13b1f04ccfba7798e8");
  EXPECT_FALSE(entry.devicetree.has_value());
  EXPECT_FALSE(entry.efi.has_value());
}

// background.md 2B: the content-addressed builder's order, repeated initrd
// lines, devicetree, and no trailing newline.
const char* const kContentAddressedEntry =
    "title NixOS\n"
    "version Generation 43 NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7)\n"
    "linux /EFI/nixos/dddd-linux-6.12.7-bzImage.efi\n"
    "initrd "
    "/EFI/nixos/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0-initrd.efi\n"
    "initrd /EFI/nixos/eeee-extra-initrd.efi\n"
    "options init=/nix/store/aaaa-nixos-system-hv/init loglevel=4\n"
    "machine-id 4098b3f648d74c13b1f04ccfba7798e8\n"
    "devicetree /EFI/nixos/gggg-board.dtb\n"
    "sort-key nixos";

TEST(LoaderEntry, ReadsTheContentAddressedEntryWithoutFinalNewline) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry(kContentAddressedEntry, kOrigin);
  EXPECT_EQ(entry.title, "NixOS");
  EXPECT_EQ(entry.version, "Generation 43 NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7)");
  EXPECT_EQ(entry.kernel, "/EFI/nixos/dddd-linux-6.12.7-bzImage.efi");
  EXPECT_EQ(
      entry.initrds,
      (std::vector<std::string>{
          "/EFI/nixos/0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0-initrd.efi",
          "/EFI/nixos/eeee-extra-initrd.efi"}));
  EXPECT_EQ(entry.options, "init=/nix/store/aaaa-nixos-system-hv/init loglevel=4");
  EXPECT_EQ(entry.machine_id, "4098b3f648d74c13b1f04ccfba7798e8");
  EXPECT_EQ(entry.devicetree, "/EFI/nixos/gggg-board.dtb");
  EXPECT_EQ(entry.sort_key, "nixos");
}

TEST(LoaderEntry, CrlfCommentsBlankLinesAndTabs) {
  const char* text =
      "# written by hand\r\n"
      "\r\n"
      "   # indented comment\r\n"
      "title\tNixOS  (test)  \t\r\n"
      "  linux \t /EFI/nixos/k.efi\r\n"
      "\t\r\n"
      "efi /EFI/xen/xen-abc.efi\r\n";
  xbb::LoaderEntry entry = xbb::parse_loader_entry(text, kOrigin);
  EXPECT_EQ(entry.title, "NixOS  (test)");
  EXPECT_EQ(entry.kernel, "/EFI/nixos/k.efi");
  EXPECT_EQ(entry.efi, "/EFI/xen/xen-abc.efi");
  EXPECT_FALSE(entry.version.has_value());
}

TEST(LoaderEntry, RepeatedOptionsAreJoinedWithOneSpace) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry(
      "options init=/x/init\noptions   quiet  \noptions a=b c=d\n", kOrigin);
  EXPECT_EQ(entry.options, "init=/x/init quiet a=b c=d");
}

TEST(LoaderEntry, EmptyValuesCountAsAbsent) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry(
      "title NixOS\nmachine-id\nsort-key   \ninitrd\noptions \t\n", kOrigin);
  EXPECT_EQ(entry.title, "NixOS");
  EXPECT_FALSE(entry.machine_id.has_value());
  EXPECT_FALSE(entry.sort_key.has_value());
  EXPECT_TRUE(entry.initrds.empty());
  EXPECT_FALSE(entry.options.has_value());
}

TEST(LoaderEntry, LaterLineReplacesEarlierValue) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry("title One\ntitle Two\n", kOrigin);
  EXPECT_EQ(entry.title, "Two");
}

TEST(LoaderEntry, UnknownKeysAreIgnored) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry(
      "title NixOS\narchitecture x64\ndevicetree-overlay /a.dtbo\nTitle Other\nlinux /EFI/k.efi\n",
      kOrigin);
  EXPECT_EQ(entry.title, "NixOS");
  EXPECT_EQ(entry.kernel, "/EFI/k.efi");
  EXPECT_FALSE(entry.devicetree.has_value());
}

TEST(LoaderEntry, EmptyTextIsAnEmptyEntry) {
  xbb::LoaderEntry entry = xbb::parse_loader_entry("", kOrigin);
  EXPECT_FALSE(entry.title.has_value());
  EXPECT_FALSE(entry.kernel.has_value());
  EXPECT_TRUE(entry.initrds.empty());
}

TEST(LoaderEntry, RejectsNulBytes) {
  EXPECT_EQ(parse_error(std::string("title NixOS\nlinux /EFI/a\0b.efi\n", 29)),
            kOrigin + ": line 2: contains a NUL byte");
}

TEST(LoaderEntry, RejectsCarriageReturnInsideALine) {
  EXPECT_EQ(parse_error("title NixOS\noptions a\rlinux /evil\n"),
            kOrigin + ": line 2: contains a carriage return inside the line");
}

TEST(LoaderEntry, RejectsLinesWithoutAKey) {
  EXPECT_EQ(parse_error("title NixOS\n\n=value\n"),
            kOrigin + ": line 3: does not start with a key");
  EXPECT_EQ(parse_error("\"title\" NixOS"), kOrigin + ": line 1: does not start with a key");
  EXPECT_EQ(parse_error("[global]\n"), kOrigin + ": line 1: does not start with a key");
}

TEST(BootCounter, TotalSaturatesInsteadOfWrapping) {
  EXPECT_EQ((xbb::BootCounter{2, 1}).total(), 3u);
  EXPECT_EQ((xbb::BootCounter{5, std::nullopt}).total(), 5u);
  EXPECT_EQ((xbb::BootCounter{4294967295u, 1}).total(), 4294967295u);
  EXPECT_EQ((xbb::BootCounter{4294967290u, 4294967290u}).total(), 4294967295u);
}

// --- rendering ------------------------------------------------------------------

TEST(LoaderEntry, RendersKeysInOrder) {
  xbb::LoaderEntry entry;
  entry.sort_key = "nixos";
  entry.machine_id = "4098b3f648d74c13b1f04ccfba7798e8";
  entry.options = "xen.efi -cfg=xen-abc.cfg";
  entry.efi = "/EFI/xen/xen-abc.efi";
  entry.version = "Generation 42 NixOS Xantusia (Linux 6.12.7), built on 2025-11-02";
  entry.title = "NixOS (with Xen Hypervisor)";
  entry.kernel = "/EFI/nixos/k.efi";
  entry.initrds = {"/EFI/nixos/i.efi"};
  entry.devicetree = "/EFI/nixos/d.dtb";
  EXPECT_EQ(xbb::render_loader_entry(entry),
            kMarker +
                "\ntitle NixOS (with Xen Hypervisor)\n"
                "version Generation 42 NixOS Xantusia (Linux 6.12.7), built on 2025-11-02\n"
                "efi /EFI/xen/xen-abc.efi\n"
                "options xen.efi -cfg=xen-abc.cfg\n"
                "machine-id 4098b3f648d74c13b1f04ccfba7798e8\n"
                "sort-key nixos\n");
}

TEST(LoaderEntry, RenderOmitsAbsentAndEmptyKeys) {
  xbb::LoaderEntry entry;
  entry.title = "NixOS (with Xen Hypervisor)";
  entry.efi = "/EFI/xen/xen-abc.efi";
  entry.machine_id = "";
  entry.sort_key = "";
  EXPECT_EQ(xbb::render_loader_entry(entry),
            kMarker + "\ntitle NixOS (with Xen Hypervisor)\nefi /EFI/xen/xen-abc.efi\n");
  EXPECT_EQ(xbb::render_loader_entry(xbb::LoaderEntry{}), kMarker + "\n");
}

TEST(LoaderEntry, RenderRejectsLineBreaksAndNulInEveryRenderedKey) {
  struct Field {
    const char* key;
    std::optional<std::string> xbb::LoaderEntry::*member;
  };
  const Field fields[] = {
      {"title", &xbb::LoaderEntry::title},
      {"version", &xbb::LoaderEntry::version},
      {"efi", &xbb::LoaderEntry::efi},
      {"options", &xbb::LoaderEntry::options},
      {"machine-id", &xbb::LoaderEntry::machine_id},
      {"sort-key", &xbb::LoaderEntry::sort_key},
  };
  const std::pair<std::string, const char*> injections[] = {
      {"x\nefi /evil", "contains a newline"},
      {"x\rversion 9", "contains a carriage return"},
      {std::string("x\0y", 3), "contains a NUL byte"},
  };
  for (const Field& field : fields) {
    for (const auto& [value, problem] : injections) {
      xbb::LoaderEntry entry;
      entry.title = "NixOS";
      entry.efi = "/EFI/xen/xen-abc.efi";
      entry.*field.member = value;
      try {
        xbb::render_loader_entry(entry);
        ADD_FAILURE() << field.key << " accepted " << problem;
      } catch (const xbb::Error& error) {
        EXPECT_EQ(std::string(error.what()),
                  std::string("loader entry: ") + field.key + ": " + problem);
      }
    }
  }
}

TEST(LoaderEntry, RenderedEntryReadsBack) {
  xbb::LoaderEntry entry;
  entry.title = "NixOS (with Xen Hypervisor)";
  entry.version = "Generation 42";
  entry.efi = "/EFI/xen/xen-abc.efi";
  entry.machine_id = "4098b3f648d74c13b1f04ccfba7798e8";
  xbb::LoaderEntry read = xbb::parse_loader_entry(xbb::render_loader_entry(entry), kOrigin);
  EXPECT_EQ(read.title, entry.title);
  EXPECT_EQ(read.version, entry.version);
  EXPECT_EQ(read.efi, entry.efi);
  EXPECT_EQ(read.machine_id, entry.machine_id);
  EXPECT_FALSE(read.options.has_value());
  EXPECT_FALSE(read.sort_key.has_value());
}

}  // namespace
