// ELF images (Xen's multiboot build), read with libelf; gzip through zlib;
// Multiboot headers. Oracles: gzip -dc, readelf -S and readelf -n, GRUB's
// grub-file --is-x86-multiboot[2], and a Python search for the magic.
#include "xbb/elf_image.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "pe_test_util.hpp"
#include "xbb/error.hpp"

namespace {

using xbb::test::error_of;

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

// Which Multiboot versions GRUB recognises in `file`: grub-file exits 0 for yes, 1 for no.
std::vector<int> grub_multiboot_versions(const std::vector<std::uint8_t>& file) {
  const xbb::test::TempDir dir;
  xbb::test::write_binary(dir / "image", file);
  std::vector<int> versions;
  for (const auto& [version, option] :
       {std::pair{1, "--is-x86-multiboot"}, std::pair{2, "--is-x86-multiboot2"}}) {
    const xbb::test::RunResult result =
        xbb::test::run({"grub-file", option, (dir / "image").string()});
    EXPECT_TRUE(result.exit_code == 0 || result.exit_code == 1) << result.err;
    if (result.exit_code == 0) versions.push_back(version);
  }
  return versions;
}

// The offset of the first occurrence of a 32-bit little-endian magic, found by Python.
std::uint64_t python_find(const std::vector<std::uint8_t>& file, const std::string& magic) {
  const xbb::test::TempDir dir;
  xbb::test::write_binary(dir / "image", file);
  const xbb::test::RunResult result = xbb::test::run(
      {"python3", "-c",
       "import struct, sys; print(open(sys.argv[1], 'rb').read().find(struct.pack('<I', " + magic +
           ")))",
       (dir / "image").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return std::stoull(result.out);
}

std::vector<int> versions_of(const std::vector<xbb::elf::MultibootHeader>& headers) {
  std::vector<int> versions;
  for (const auto& header : headers) versions.push_back(header.version);
  return versions;
}

TEST(Multiboot, Xen417CarriesBothHeaders) {
  const auto elf = xen417_elf();
  const auto headers = xbb::elf::find_multiboot_headers(elf);
  EXPECT_EQ(versions_of(headers), grub_multiboot_versions(elf));
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].offset, python_find(elf, "0x1BADB002"));
  EXPECT_EQ(headers[1].offset, python_find(elf, "0xE85250D6"));
  EXPECT_EQ(headers[0].offset, 0x88u);
  EXPECT_EQ(headers[1].offset, 0x98u);
  // The gzip file itself carries none: loaders look into the decompressed image.
  EXPECT_TRUE(
      xbb::elf::find_multiboot_headers(xbb::test::read_binary(xbb::test::xen417_gz())).empty());
}

TEST(Multiboot, BinLsCarriesNone) {
  const auto ls = xbb::test::read_binary("/bin/ls");
  EXPECT_TRUE(xbb::elf::is_elf(ls));
  EXPECT_TRUE(grub_multiboot_versions(ls).empty());
  EXPECT_TRUE(xbb::elf::find_multiboot_headers(ls).empty());
}

void put32(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = (value >> (8 * i)) & 0xff;
}

// A file of `size` bytes with a Multiboot 1 header (flags 3) at `offset`.
std::vector<std::uint8_t> with_multiboot1(std::size_t offset, std::uint32_t checksum_error = 0,
                                          std::size_t size = 0x3000) {
  std::vector<std::uint8_t> file(size, 0);
  put32(file, offset, 0x1BADB002);
  put32(file, offset + 4, 3);
  put32(file, offset + 8, 0u - 0x1BADB002u - 3u + checksum_error);
  return file;
}

// A file of `size` bytes with a Multiboot 2 header (i386, length 24) at `offset`.
std::vector<std::uint8_t> with_multiboot2(std::size_t offset, std::uint32_t checksum_error = 0,
                                          std::size_t size = 0x9000) {
  std::vector<std::uint8_t> file(size, 0);
  put32(file, offset, 0xE85250D6);
  put32(file, offset + 8, 24);
  put32(file, offset + 12, 0u - 0xE85250D6u - 24u + checksum_error);
  return file;
}

TEST(Multiboot, SyntheticHeadersAgreeWithGrub) {
  struct Case {
    std::string name;
    std::vector<std::uint8_t> file;
    std::vector<int> versions;
  };
  const std::vector<Case> cases = {
      {"v1 at 0", with_multiboot1(0), {1}},
      {"v1 at 0x1ff4, ending at the limit", with_multiboot1(0x1ff4), {1}},
      {"v1 bad checksum", with_multiboot1(0x100, 1), {}},
      {"v1 misaligned", with_multiboot1(0x102), {}},
      {"v1 crossing the limit", with_multiboot1(0x1ff8), {}},
      {"v1 past the limit", with_multiboot1(0x2000), {}},
      {"v2 at 8", with_multiboot2(8), {2}},
      {"v2 at 0x7ff0, ending at the limit", with_multiboot2(0x7ff0), {2}},
      {"v2 bad checksum", with_multiboot2(0x100, 0x100), {}},
      {"v2 only 4-byte aligned", with_multiboot2(0x104), {}},
      {"v2 crossing the limit", with_multiboot2(0x7ff8), {}},
      {"v2 past the limit", with_multiboot2(0x8000), {}},
      {"v1 at the end of a short file", with_multiboot1(0x34, 0, 0x40), {1}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(grub_multiboot_versions(c.file), c.versions) << c.name;
    EXPECT_EQ(versions_of(xbb::elf::find_multiboot_headers(c.file)), c.versions) << c.name;
  }
  const auto v2 = xbb::elf::find_multiboot_headers(with_multiboot2(0x7ff0));
  ASSERT_EQ(v2.size(), 1u);
  EXPECT_EQ(v2[0].offset, 0x7ff0u);
}

TEST(Multiboot, AnInvalidMagicDoesNotHideALaterHeader) {
  auto file = with_multiboot1(0x200);
  put32(file, 0x100, 0x1BADB002);  // magic without a checksum
  const auto headers = xbb::elf::find_multiboot_headers(file);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].offset, 0x200u);
  EXPECT_EQ(grub_multiboot_versions(file), std::vector<int>{1});
}

}  // namespace
