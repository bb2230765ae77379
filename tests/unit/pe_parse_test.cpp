// Reading PE32+ images: the real Xen 4.17 and 4.20 images (facts measured with
// objdump -p -h, quoted in issue 2), synthetic images, and malformed input.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/elf_image.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

using xbb::test::build_pe;
using xbb::test::kCoffOffset;
using xbb::test::kOptionalOffset;
using xbb::test::kSectionTableOffset;

// The message of the xbb::Error that parsing `file` throws, or "no error".
std::string parse_error(const std::vector<std::uint8_t>& file) {
  try {
    xbb::pe::parse(file);
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return "no error";
}

#define EXPECT_PARSE_ERROR(file, text)                           \
  do {                                                           \
    const std::string message = parse_error(file);               \
    EXPECT_NE(message.find(text), std::string::npos) << message; \
  } while (false)

void put16(std::vector<std::uint8_t>& file, std::size_t offset, std::uint16_t value) {
  file[offset] = value & 0xff;
  file[offset + 1] = value >> 8;
}

void put32(std::vector<std::uint8_t>& file, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) file[offset + i] = (value >> (8 * i)) & 0xff;
}

std::vector<std::uint8_t> truncated(std::vector<std::uint8_t> file, std::size_t size) {
  file.resize(size);
  return file;
}

std::vector<std::string> names(const xbb::pe::Image& image) {
  std::vector<std::string> result;
  for (const auto& section : image.sections) result.push_back(section.name);
  return result;
}

TEST(PeParse, Xen417HeaderFactsMatchObjdump) {
  const auto file = xbb::test::read_binary(xbb::test::xen417_efi());
  const xbb::pe::Image image = xbb::pe::parse(file);
  EXPECT_EQ(image.machine, 0x8664);
  EXPECT_EQ(image.image_base, 0xffff82d040000000u);
  EXPECT_EQ(image.section_alignment, 0x200000u);
  EXPECT_EQ(image.file_alignment, 0x20u);
  EXPECT_EQ(image.size_of_image, 0x1000000u);
  EXPECT_EQ(image.size_of_headers, 0x300u);
  EXPECT_EQ(image.checksum, 0x2bdb7fu);
  EXPECT_EQ(image.section_table_offset + 40 * image.sections.size(), 0x2f0u);
  EXPECT_EQ(names(image),
            (std::vector<std::string>{".text", ".rodata", ".buildid", ".init", ".data.re", ".data",
                                      ".bss", ".reloc", ".pad"}));
  EXPECT_EQ(image.sections[8].virtual_address, 0xa00000u);
  EXPECT_EQ(image.sections[8].virtual_size, 0x600000u);
  EXPECT_EQ(image.sections[8].size_of_raw_data, 0u);
  // objdump -p: "2 CodeView 00000019 00457604 001b80bc"
  ASSERT_EQ(image.debug_entries.size(), 1u);
  EXPECT_EQ(image.debug_entries[0].type, xbb::pe::kDebugTypeCodeView);
  EXPECT_EQ(image.debug_entries[0].size_of_data, 0x19u);
  EXPECT_EQ(image.debug_entries[0].address_of_raw_data, 0x457604u);
  EXPECT_EQ(image.debug_entries[0].pointer_to_raw_data, 0x1b80bcu);
  EXPECT_FALSE(image.is_signed());
}

TEST(PeParse, Xen420HasLongNamesDebugSectionsAndSymbols) {
  const auto file = xbb::test::read_binary(xbb::test::xen420_efi());
  const xbb::pe::Image image = xbb::pe::parse(file);
  EXPECT_EQ(image.size_of_image, 0x2400000u);
  EXPECT_NE(image.pointer_to_symbol_table, 0u);
  EXPECT_EQ(names(image), (std::vector<std::string>{
                              ".text", ".rodata", ".buildid", ".init", ".data.read_mostly", ".data",
                              ".bss", ".reloc", ".debug_abbrev", ".debug_info", ".debug_str",
                              ".debug_line", ".debug_line_str", ".debug_frame", ".debug_loclists",
                              ".debug_rnglists", ".debug_aranges"}));
  for (std::size_t i = 7; i < image.sections.size(); ++i) {
    EXPECT_TRUE(image.sections[i].characteristics & xbb::pe::kScnMemDiscardable)
        << image.sections[i].name;
  }
  const auto& last = image.sections.back();
  EXPECT_EQ(image.image_base + last.virtual_address + last.virtual_size, 0xffff82d042236c80u);
}

TEST(PeParse, NewSectionGoesAfterTheHighestSectionOfAll) {
  const auto xen417 = xbb::test::read_binary(xbb::test::xen417_efi());
  EXPECT_EQ(xbb::pe::next_section_vma(xbb::pe::parse(xen417)), 0xffff82d041000000u);
  const auto xen420 = xbb::test::read_binary(xbb::test::xen420_efi());
  EXPECT_EQ(xbb::pe::next_section_vma(xbb::pe::parse(xen420)), 0xffff82d042400000u);
}

TEST(PeParse, NextSectionIsNeverBelowSizeOfImage) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  auto file = build_pe(spec);
  const xbb::pe::Image image = xbb::pe::parse(file);
  put32(file, kOptionalOffset + 56, image.size_of_image + 0x5000);
  EXPECT_EQ(xbb::pe::next_section_rva(xbb::pe::parse(file)), image.size_of_image + 0x5000);
  put32(file, kOptionalOffset + 56, image.size_of_image + 0x5001);
  EXPECT_EQ(xbb::pe::next_section_rva(xbb::pe::parse(file)), image.size_of_image + 0x6000);
}

TEST(PeParse, ChecksumOfTheRealImagesEqualsTheLinkersValue) {
  for (const auto& path : {xbb::test::xen417_efi(), xbb::test::xen420_efi()}) {
    const auto file = xbb::test::read_binary(path);
    const xbb::pe::Image image = xbb::pe::parse(file);
    EXPECT_EQ(xbb::pe::compute_checksum(file, image), image.checksum) << path;
    EXPECT_EQ(xbb::test::reference_checksum(file), image.checksum) << path;
  }
  EXPECT_EQ(xbb::pe::parse(xbb::test::read_binary(xbb::test::xen417_efi())).checksum, 0x2bdb7fu);
}

TEST(PeParse, BuildIdIsTheCodeViewSignatureInFileOrder) {
  const auto file = xbb::test::read_binary(xbb::test::xen417_efi());
  // Bytes 0x1b80c0..0x1b80cf of the file, after "RSDS" at 0x1b80bc.
  EXPECT_EQ(xbb::pe::build_id(file, xbb::pe::parse(file)), "c62e97bfb7156a842127d5c9d7bbced1");

  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.debug_directory = true;
  spec.build_id = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
  const auto synthetic = build_pe(spec);
  EXPECT_EQ(xbb::pe::build_id(synthetic, xbb::pe::parse(synthetic)),
            "00112233445566778899aabbccddeeff");
  const auto plain = build_pe(xbb::test::xen_like());
  EXPECT_EQ(xbb::pe::build_id(plain, xbb::pe::parse(plain)), "");
}

TEST(PeParse, SyntheticImageWithLongNamesThroughTheStringTable) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.sections.push_back({".debug_info", xbb::test::pattern(0x99, 4), 0, 0x42000040});
  const auto file = build_pe(spec);
  const xbb::pe::Image image = xbb::pe::parse(file);
  EXPECT_EQ(image.sections.back().name, ".debug_info");
  EXPECT_EQ(image.number_of_symbols, 5u);
  EXPECT_EQ(xbb::pe::section_contents(file, image, ".debug_info"), xbb::test::pattern(0x99, 4));
}

TEST(PeParse, SectionContentsStopAtVirtualSize) {
  const auto file = build_pe(xbb::test::xen_like());
  const xbb::pe::Image image = xbb::pe::parse(file);
  EXPECT_EQ(xbb::pe::section_contents(file, image, ".text"), xbb::test::pattern(0x345, 1));
  EXPECT_TRUE(xbb::pe::section_contents(file, image, ".bss").empty());
  EXPECT_TRUE(xbb::pe::section_contents(file, image, ".config").empty());
}

TEST(PeParse, RefusesElfWithTheMessageTheBuilderShows) {
  const auto gz = xbb::test::read_binary(xbb::test::xen417_gz());
  const auto elf = xbb::elf::gunzip(gz);
  EXPECT_EQ(parse_error(elf), "this is an ELF multiboot image; the bootspec must point at xen.efi");
  EXPECT_PARSE_ERROR(gz, "gzip-compressed");
  EXPECT_PARSE_ERROR(gz, "the bootspec must point at xen.efi");
}

TEST(PeParse, RefusesPe32) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.magic = 0x10b;
  EXPECT_PARSE_ERROR(build_pe(spec),
                     "offset 0x98: optional header Magic 0x10b: a PE32 (32-bit) image");
}

TEST(PeParse, RefusesNonPe) {
  const std::string text =
      "[global]\ndefault=xen\n# a configuration file, not an image\n........................\n";
  EXPECT_PARSE_ERROR(std::vector<std::uint8_t>(text.begin(), text.end()),
                     "offset 0x0: not a PE image: no \"MZ\"");
  auto file = build_pe(xbb::test::xen_like());
  file[0x81] = 'X';
  EXPECT_PARSE_ERROR(file, "offset 0x80: not a PE image: no \"PE\\0\\0\" signature");
  file = build_pe(xbb::test::xen_like());
  put16(file, kOptionalOffset, 0x107);
  EXPECT_PARSE_ERROR(file, "optional header Magic 0x107 is neither");
}

TEST(PeParse, TruncationAtEveryHeaderBoundaryNamesTheField) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.debug_directory = true;
  const auto file = build_pe(spec);
  const xbb::pe::Image image = xbb::pe::parse(file);
  const std::size_t table_end = kSectionTableOffset + 40 * image.sections.size();
  const std::size_t symbols = image.pointer_to_symbol_table;
  const std::size_t strings = symbols + 18 * image.number_of_symbols;

  EXPECT_PARSE_ERROR(
      truncated(file, 0),
      "offset 0x0: DOS header (0x40 bytes) extends past the end of the file (0x0 bytes)");
  EXPECT_PARSE_ERROR(truncated(file, 0x3f),
                     "offset 0x0: DOS header (0x40 bytes) extends past the end of the file (0x3f");
  EXPECT_PARSE_ERROR(truncated(file, 0x40), "offset 0x80: PE signature");
  EXPECT_PARSE_ERROR(truncated(file, 0x83), "offset 0x80: PE signature");
  EXPECT_PARSE_ERROR(truncated(file, 0x84), "offset 0x84: COFF file header (0x14 bytes)");
  EXPECT_PARSE_ERROR(truncated(file, 0x97), "offset 0x84: COFF file header");
  EXPECT_PARSE_ERROR(truncated(file, 0x98), "offset 0x98: optional header Magic");
  EXPECT_PARSE_ERROR(truncated(file, 0x9a),
                     "offset 0x98: optional header (SizeOfOptionalHeader) (0xf0 bytes)");
  EXPECT_PARSE_ERROR(truncated(file, 0x187), "offset 0x98: optional header (SizeOfOptionalHeader)");
  EXPECT_PARSE_ERROR(truncated(file, 0x188), "offset 0x188: section table (5 sections)");
  EXPECT_PARSE_ERROR(truncated(file, table_end - 1), "offset 0x188: section table (5 sections)");
  EXPECT_PARSE_ERROR(truncated(file, table_end),
                     "offset 0xd4: SizeOfHeaders 0x400 does not cover the section table (ending at "
                     "0x250) or exceeds the file (0x250 bytes)");
  EXPECT_PARSE_ERROR(truncated(file, symbols), "COFF symbol table");
  EXPECT_PARSE_ERROR(truncated(file, strings + 2), "COFF string table size");
  EXPECT_PARSE_ERROR(truncated(file, file.size() - 1),
                     "offset 0xe5a: COFF string table size (0x4 bytes)");

  const auto plain = build_pe(xbb::test::xen_like());
  EXPECT_PARSE_ERROR(truncated(plain, 0x400),
                     "offset 0x19c: section 0 (.text): raw data 0x400+0x400 extends past the end "
                     "of the file (0x400 bytes)");

  // And no prefix at all crashes or parses.
  for (std::size_t size = 0; size < file.size(); ++size) {
    EXPECT_NE(parse_error(truncated(file, size)), "no error") << size;
  }
}

TEST(PeParse, AbsurdCountsAndOffsetsNameTheField) {
  const auto good = build_pe(xbb::test::xen_like());
  auto file = good;
  put32(file, 0x3c, 0xfffffff0);
  EXPECT_PARSE_ERROR(file, "offset 0xfffffff0: PE signature (e_lfanew 0xfffffff0)");

  file = good;
  put16(file, kCoffOffset + 2, 0xffff);
  EXPECT_PARSE_ERROR(
      file, "offset 0x188: section table (65535 sections) (0x27ffd8 bytes) extends past the end");

  file = good;
  put16(file, kCoffOffset + 16, 0x40);
  EXPECT_PARSE_ERROR(
      file, "offset 0x94: SizeOfOptionalHeader 0x40 is smaller than a PE32+ optional header");

  file = good;
  put32(file, kOptionalOffset + 108, 0xffffffff);
  EXPECT_PARSE_ERROR(
      file,
      "offset 0x104: NumberOfRvaAndSizes 0xffffffff does not fit in SizeOfOptionalHeader 0xf0");

  file = good;
  put32(file, kOptionalOffset + 36, 0x300);
  EXPECT_PARSE_ERROR(file, "offset 0xbc: FileAlignment 0x300 is not a power of two");

  file = good;
  put32(file, kOptionalOffset + 32, 0x100);
  EXPECT_PARSE_ERROR(
      file,
      "offset 0xb8: SectionAlignment 0x100 is not a power of two at least FileAlignment 0x200");

  file = good;
  put32(file, kOptionalOffset + 60, 0x7fffffff);
  EXPECT_PARSE_ERROR(file,
                     "offset 0xd4: SizeOfHeaders 0x7fffffff does not cover the section table");

  file = good;
  put32(file, kSectionTableOffset + 20, 0xfffffe00);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x19c: section 0 (.text): raw data 0xfffffe00+0x400 extends past the "
                     "end of the file");

  file = good;
  put32(file, kSectionTableOffset + 16, 0xffffffff);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x19c: section 0 (.text): raw data 0x400+0xffffffff extends past the "
                     "end of the file (0xc00 bytes)");

  file = good;
  put32(file, kSectionTableOffset + 20, 0x100);
  EXPECT_PARSE_ERROR(
      file, "offset 0x19c: section 0 (.text): PointerToRawData 0x100 lies inside the headers");

  file = good;
  put32(file, kSectionTableOffset + 8, 0xfffffff0);
  EXPECT_PARSE_ERROR(
      file, "offset 0x188: section 0 (.text): ends at RVA 0x100000ff0, beyond SizeOfImage 0x6000");

  file = good;
  put32(file, kSectionTableOffset + 12, 0x10);
  EXPECT_PARSE_ERROR(
      file, "offset 0x188: section 0 (.text): VirtualAddress 0x10 lies inside the headers");

  file = good;
  put32(file, kCoffOffset + 8, 0xffffff00);
  put32(file, kCoffOffset + 12, 1);
  EXPECT_PARSE_ERROR(file,
                     "offset 0xffffff00: COFF symbol table (PointerToSymbolTable, NumberOfSymbols "
                     "1) (0x12 bytes)");

  file = good;
  put32(file, kCoffOffset + 8, 0x200);
  put32(file, kCoffOffset + 12, 0x10000000);
  EXPECT_PARSE_ERROR(
      file, "offset 0x200: COFF symbol table (PointerToSymbolTable, NumberOfSymbols 268435456)");

  file = good;
  put32(file, kOptionalOffset + 112 + 8 * 6, 0x7000);
  put32(file, kOptionalOffset + 112 + 8 * 6 + 4, 28);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x138: debug directory at RVA 0x7000 (0x1c bytes) is not inside any "
                     "section's file data");

  file = good;
  put32(file, kOptionalOffset + 112 + 8 * 6, 0x1000);
  put32(file, kOptionalOffset + 112 + 8 * 6 + 4, 27);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x138: debug directory size 0x1b is not a multiple of the entry size");

  file = good;
  put32(file, kOptionalOffset + 112 + 8 * 4, 0x800);
  put32(file, kOptionalOffset + 112 + 8 * 4 + 4, 0x100000);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x800: certificate table (security directory entry at 0x128) "
                     "(0x100000 bytes) extends past the end");
}

TEST(PeParse, LongNamesMustPointIntoTheStringTable) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.sections.push_back({".debug_info", xbb::test::pattern(0x10, 4), 0, 0x42000040});
  const auto good = build_pe(spec);
  const std::size_t header = kSectionTableOffset + 40 * 4;

  auto file = good;
  std::memcpy(file.data() + header, "/9999\0\0\0", 8);
  EXPECT_PARSE_ERROR(
      file,
      "offset 0x228: section name \"/9999\" points outside the COFF string table (0x10 bytes)");

  file = good;
  std::memcpy(file.data() + header, "/x\0\0\0\0\0\0", 8);
  EXPECT_PARSE_ERROR(
      file, "offset 0x228: section name \"/x\" is neither a name nor a string table offset");

  file = good;
  file.back() = 'x';  // the last name loses its NUL
  EXPECT_PARSE_ERROR(file, "long section name \"/4\" is not NUL-terminated");

  EXPECT_PARSE_ERROR(truncated(good, good.size() - 1),
                     "COFF string table (0x10 bytes) extends past the end of the file");

  file = good;
  put32(file, kCoffOffset + 8, 0);
  EXPECT_PARSE_ERROR(
      file, "offset 0x228: section name \"/4\" refers to a COFF string table the image lacks");
}

TEST(PeParse, OverlappingSectionsAreRefused) {
  const auto good = build_pe(xbb::test::xen_like());
  const xbb::pe::Image image = xbb::pe::parse(good);

  auto file = good;  // .data starts inside .text in memory
  put32(file, kSectionTableOffset + 40 + 12, image.sections[0].virtual_address + 0x10);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x1b0: section 1 (.data) at RVA 0x1010 overlaps section 0 (.text) "
                     "(RVA 0x1000 to 0x1345)");

  file = good;  // .data's raw data starts inside .text's
  put32(file, kSectionTableOffset + 40 + 20, image.sections[0].pointer_to_raw_data + 0x200);
  EXPECT_PARSE_ERROR(file,
                     "offset 0x1c4: section 1 (.data): raw data at 0x600 overlaps section 0 "
                     "(.text) (file 0x400 to 0x800)");
}

}  // namespace
