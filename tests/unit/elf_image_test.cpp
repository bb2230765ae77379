// ELF images (Xen's multiboot build), read with libelf; gzip through zlib.
// Oracles: gzip -dc, readelf -S and readelf -n.
#include "xbb/elf_image.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "pe_test_util.hpp"
#include "xbb/error.hpp"

namespace {

std::string error_of(auto&& action) {
  try {
    action();
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return "no error";
}

std::vector<std::uint8_t> xen417_elf() {
  return xbb::elf::gunzip(xbb::test::read_binary(xbb::test::xen417_gz()));
}

TEST(ElfImage, GunzipMatchesGzip) {
  const xbb::test::RunResult gzip =
      xbb::test::run({"gzip", "-dc", xbb::test::xen417_gz().string()});
  ASSERT_EQ(gzip.exit_code, 0) << gzip.err;
  const auto ours = xen417_elf();
  EXPECT_EQ(std::string(ours.begin(), ours.end()), gzip.out);
  EXPECT_TRUE(xbb::elf::is_gzip(xbb::test::read_binary(xbb::test::xen417_gz())));
  EXPECT_TRUE(xbb::elf::is_elf(ours));
  EXPECT_FALSE(xbb::elf::is_elf(xbb::test::read_binary(xbb::test::xen417_efi())));
}

TEST(ElfImage, CorruptOrTruncatedGzipIsAnError) {
  auto gz = xbb::test::read_binary(xbb::test::xen417_gz());
  const std::vector<std::uint8_t> head(gz.begin(), gz.begin() + 1000);
  EXPECT_NE(error_of([&] {
              xbb::elf::gunzip(head);
            }).find("gzip: offset 0x3e8: compressed data ends before the end"),
            std::string::npos)
      << error_of([&] { xbb::elf::gunzip(head); });
  gz[3] = 0xff;  // reserved flag bits set: not a valid gzip header
  EXPECT_NE(error_of([&] { xbb::elf::gunzip(gz); }).find("gzip: offset"), std::string::npos);
  EXPECT_EQ(
      error_of([&] { xbb::elf::gunzip(xbb::test::read_binary(xbb::test::xen417_gz()), 1000); }),
      "gzip: decompressed data larger than 0x3e8 bytes");
}

TEST(ElfImage, SectionsMatchReadelf) {
  const xbb::elf::Image image = xbb::elf::parse(xen417_elf());
  EXPECT_EQ(image.elf_class, 32);
  EXPECT_EQ(image.machine, 3);  // EM_386: Xen's multiboot entry is 32-bit

  const xbb::test::TempDir dir;
  xbb::test::write_binary(dir / "xen", xen417_elf());
  const xbb::test::RunResult readelf =
      xbb::test::run({"readelf", "-S", "-W", (dir / "xen").string()});
  ASSERT_EQ(readelf.exit_code, 0) << readelf.err;
  // "  [ 1] .text   PROGBITS   00200000 000080 271920 00 WAX  0   0 64"
  std::vector<std::string> expected;
  std::istringstream lines(readelf.out);
  std::string line;
  while (std::getline(lines, line)) {
    const auto close = line.find("] ");
    if (line.find("  [") != 0 || close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string name, type, address, offset, size;
    fields >> name >> type >> address >> offset >> size;
    if (name == "NULL" || name == "Name") continue;  // the null section, the column titles
    expected.push_back(name + " " + type + " " + address + " " + offset + " " + size);
  }
  std::vector<std::string> ours;
  for (const auto& section : image.sections) {
    char text[128];
    const char* type = section.type == 1   ? "PROGBITS"
                       : section.type == 3 ? "STRTAB"
                       : section.type == 7 ? "NOTE"
                                           : "?";
    std::snprintf(text, sizeof text, "%s %s %08llx %06llx %06llx", section.name.c_str(), type,
                  static_cast<unsigned long long>(section.address),
                  static_cast<unsigned long long>(section.offset),
                  static_cast<unsigned long long>(section.size));
    ours.push_back(text);
  }
  EXPECT_EQ(ours, expected);
  EXPECT_EQ(ours.size(), 3u);
}

TEST(ElfImage, BuildIdMatchesReadelf) {
  const xbb::test::TempDir dir;
  xbb::test::write_binary(dir / "xen", xen417_elf());
  const xbb::test::RunResult readelf = xbb::test::run({"readelf", "-n", (dir / "xen").string()});
  ASSERT_EQ(readelf.exit_code, 0) << readelf.err;
  const auto at = readelf.out.find("Build ID: ");
  ASSERT_NE(at, std::string::npos) << readelf.out;
  const std::string expected = readelf.out.substr(at + 10, readelf.out.find('\n', at) - at - 10);
  EXPECT_EQ(xbb::elf::parse(xen417_elf()).build_id, expected);
  EXPECT_EQ(expected, "151b373fd64b321593bf987fd923cd10dabadac4");
}

TEST(ElfImage, NonElfAndTruncatedElfAreErrors) {
  EXPECT_EQ(error_of([] { xbb::elf::parse(xbb::test::read_binary(xbb::test::xen417_efi())); }),
            "ELF: no ELF magic at offset 0x0");
  const auto elf = xen417_elf();
  const std::vector<std::uint8_t> head(elf.begin(), elf.begin() + 30);
  EXPECT_NE(error_of([&] { xbb::elf::parse(head); }).find("ELF: "), std::string::npos);
  // Section headers cut off: libelf must report it, not read past the end.
  const std::vector<std::uint8_t> no_section_headers(elf.begin(), elf.begin() + 0x271a40);
  EXPECT_NE(error_of([&] { xbb::elf::parse(no_section_headers); }).find("ELF: "),
            std::string::npos);
}

}  // namespace
