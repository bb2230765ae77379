// Adding sections: addresses, header growth, moved file offsets, replacement,
// checksum; on the real Xen images and on synthetic ones.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

using xbb::pe::add_sections;
using xbb::pe::NewSection;
using xbb::test::build_pe;
using xbb::test::pattern;

std::vector<std::uint8_t> bytes(const std::string& text) { return {text.begin(), text.end()}; }

const std::vector<std::uint8_t> kConfig =
    bytes("[global]\ndefault=xen\n\n[xen]\noptions=console=vga\nkernel=vmlinuz\n");

std::string add_error(const std::vector<std::uint8_t>& file,
                      const std::vector<NewSection>& sections) {
  try {
    add_sections(file, sections);
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return "no error";
}

// The symbol table and string table, which run to the end of the file in
// every image here.
std::vector<std::uint8_t> symbols_and_strings(const std::vector<std::uint8_t>& file,
                                              const xbb::pe::Image& image) {
  return {file.begin() + image.pointer_to_symbol_table, file.end()};
}

void put32(std::vector<std::uint8_t>& bytes, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[offset + i] = (value >> (8 * i)) & 0xff;
}

// What a section's contents must be after its raw data moved by `shift`
// bytes: unchanged, except the PointerToRawData field of debug directory
// entries inside it, which moves with the debug data (in the same section
// in every image here).
std::vector<std::uint8_t> expected_contents(const std::vector<std::uint8_t>& file,
                                            const xbb::pe::Image& image, std::size_t index,
                                            std::uint32_t shift) {
  const xbb::pe::Section& section = image.sections[index];
  std::vector<std::uint8_t> contents = xbb::pe::section_contents(file, image, section.name);
  if (image.data_directories.size() <= xbb::pe::kDirectoryDebug) return contents;
  const xbb::pe::DataDirectory& debug = image.data_directories[xbb::pe::kDirectoryDebug];
  if (debug.size == 0 || debug.virtual_address < section.virtual_address ||
      debug.virtual_address >= section.virtual_address + contents.size()) {
    return contents;
  }
  for (std::size_t i = 0; i < image.debug_entries.size(); ++i) {
    put32(contents, debug.virtual_address - section.virtual_address + 28 * i + 24,
          image.debug_entries[i].pointer_to_raw_data + shift);
  }
  return contents;
}

// Every section of `before` is in `after` with the same header fields (other
// than the file offset) and the same contents.
void expect_sections_kept(const std::vector<std::uint8_t>& before,
                          const std::vector<std::uint8_t>& after) {
  const xbb::pe::Image old_image = xbb::pe::parse(before);
  const xbb::pe::Image new_image = xbb::pe::parse(after);
  ASSERT_GE(new_image.sections.size(), old_image.sections.size());
  for (std::size_t i = 0; i < old_image.sections.size(); ++i) {
    const auto& old_section = old_image.sections[i];
    const auto& new_section = new_image.sections[i];
    EXPECT_EQ(new_section.name, old_section.name);
    EXPECT_EQ(new_section.virtual_address, old_section.virtual_address) << old_section.name;
    EXPECT_EQ(new_section.virtual_size, old_section.virtual_size) << old_section.name;
    EXPECT_EQ(new_section.size_of_raw_data, old_section.size_of_raw_data) << old_section.name;
    EXPECT_EQ(new_section.characteristics, old_section.characteristics) << old_section.name;
    const std::uint32_t shift = new_section.pointer_to_raw_data - old_section.pointer_to_raw_data;
    EXPECT_EQ(xbb::pe::section_contents(after, new_image, new_section.name),
              expected_contents(before, old_image, i, shift))
        << old_section.name;
  }
}

TEST(PeAdd, Xen417ConfigLandsAtTheEndOfPadWithGrownHeaders) {
  const auto input = xbb::test::read_binary(xbb::test::xen417_efi());
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {{".config", kConfig}});
  EXPECT_TRUE(result.warnings.empty());
  const xbb::pe::Image after = xbb::pe::parse(result.file);

  ASSERT_EQ(after.sections.size(), 10u);
  const xbb::pe::Section& config = after.sections[9];
  EXPECT_EQ(config.name, ".config");
  EXPECT_EQ(after.image_base + config.virtual_address, 0xffff82d041000000u);
  EXPECT_EQ(config.virtual_size, kConfig.size());
  EXPECT_EQ(config.size_of_raw_data % 0x20, 0u);
  EXPECT_EQ(config.characteristics, 0x40000040u);
  EXPECT_EQ(xbb::pe::section_contents(result.file, after, ".config"), kConfig);

  // Ten headers end at 0x318: SizeOfHeaders grows from 0x300 to 0x320 and
  // all raw data moves down by 0x20.
  EXPECT_EQ(after.size_of_headers, 0x320u);
  EXPECT_EQ(after.sections[0].pointer_to_raw_data, 0x320u);
  for (std::size_t i = 0; i < 9; ++i) {
    if (before.sections[i].size_of_raw_data == 0) continue;
    EXPECT_EQ(after.sections[i].pointer_to_raw_data, before.sections[i].pointer_to_raw_data + 0x20)
        << i;
  }
  EXPECT_EQ(config.pointer_to_raw_data, 0x272040u);  // right after .reloc's moved data
  expect_sections_kept(input, result.file);

  EXPECT_EQ(after.size_of_image, 0x1200000u);
  EXPECT_EQ(after.size_of_initialized_data,
            before.size_of_initialized_data + config.size_of_raw_data);
  EXPECT_EQ(after.checksum, xbb::test::reference_checksum(result.file));
  EXPECT_NE(after.checksum, before.checksum);

  // The debug directory's file pointer follows its data; the build id stays.
  ASSERT_EQ(after.debug_entries.size(), 1u);
  EXPECT_EQ(after.debug_entries[0].pointer_to_raw_data, 0x1b80bcu + 0x20);
  EXPECT_EQ(xbb::pe::build_id(result.file, after), "c62e97bfb7156a842127d5c9d7bbced1");

  // The symbol and string tables move behind the new data, unchanged.
  EXPECT_EQ(after.pointer_to_symbol_table, config.pointer_to_raw_data + config.size_of_raw_data);
  EXPECT_EQ(after.number_of_symbols, before.number_of_symbols);
  EXPECT_EQ(symbols_and_strings(result.file, after), symbols_and_strings(input, before));
}

TEST(PeAdd, Xen420ConfigLandsPastTheDebugSections) {
  const auto input = xbb::test::read_binary(xbb::test::xen420_efi());
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {{".config", kConfig}});
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  ASSERT_EQ(after.sections.size(), 18u);
  EXPECT_EQ(after.sections[17].name, ".config");
  EXPECT_EQ(after.image_base + after.sections[17].virtual_address, 0xffff82d042400000u);
  EXPECT_EQ(after.size_of_image, 0x2600000u);
  // 18 headers end at 0x458: SizeOfHeaders 0x440 -> 0x460.
  EXPECT_EQ(after.size_of_headers, 0x460u);
  EXPECT_EQ(after.sections[4].name, ".data.read_mostly");
  expect_sections_kept(input, result.file);
  EXPECT_EQ(symbols_and_strings(result.file, after), symbols_and_strings(input, before));
  EXPECT_EQ(xbb::pe::build_id(result.file, after), xbb::pe::build_id(input, before));
  EXPECT_EQ(after.checksum, xbb::test::reference_checksum(result.file));
}

TEST(PeAdd, SectionsAddedTogetherFollowEachOtherAtSectionAlignment) {
  const auto input = xbb::test::read_binary(xbb::test::xen417_efi());
  const std::vector<NewSection> sections = {
      {".config", kConfig}, {".kernel", pattern(0x300001, 5)}, {".ramdisk", pattern(0x1234, 6)}};
  const auto result = add_sections(input, sections);
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  ASSERT_EQ(after.sections.size(), 12u);
  EXPECT_EQ(after.sections[9].virtual_address, 0x1000000u);
  EXPECT_EQ(after.sections[10].virtual_address, 0x1200000u);
  EXPECT_EQ(after.sections[11].virtual_address,
            0x1600000u);  // 0x1200000 + 0x300001, rounded up to 2 MiB
  EXPECT_EQ(after.size_of_image, 0x1800000u);
  EXPECT_EQ(after.size_of_headers, 0x380u);  // 12 headers end at 0x368
  for (const NewSection& section : sections) {
    EXPECT_EQ(xbb::pe::section_contents(result.file, after, section.name), section.data)
        << section.name;
  }
  expect_sections_kept(input, result.file);
}

TEST(PeAdd, AddingAgainReplacesAndIsByteIdentical) {
  const auto input = xbb::test::read_binary(xbb::test::xen417_efi());
  const std::vector<NewSection> sections = {{".config", kConfig}, {".kernel", pattern(0x10000, 5)}};
  const auto once = add_sections(input, sections);
  const auto twice = add_sections(once.file, sections);
  EXPECT_TRUE(once.file == twice.file);

  // A different .config replaces the old one in place of the same address.
  const auto changed = add_sections(once.file, {{".config", bytes("[global]\n")}});
  const xbb::pe::Image image = xbb::pe::parse(changed.file);
  ASSERT_EQ(image.sections.size(), 11u);
  EXPECT_EQ(image.sections[9].name, ".kernel");
  EXPECT_EQ(image.sections[10].name, ".config");
  EXPECT_EQ(xbb::pe::section_contents(changed.file, image, ".config"), bytes("[global]\n"));
  EXPECT_EQ(xbb::pe::section_contents(changed.file, image, ".kernel"), pattern(0x10000, 5));
  EXPECT_EQ(image.sections[10].virtual_address, 0x1400000u);  // after .kernel (0x1200000 + 0x10000)
  expect_sections_kept(input, changed.file);
}

TEST(PeAdd, ReplacingIsIdempotentOnSyntheticImagesWithSymbols) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.debug_directory = true;
  spec.sections.push_back({".debug_info", pattern(0x777, 9), 0, 0x42000040});
  const auto input = build_pe(spec);
  const auto once = add_sections(input, {{".config", kConfig}});
  EXPECT_TRUE(add_sections(once.file, {{".config", kConfig}}).file == once.file);
  const auto other = add_sections(input, {{".config", bytes("x")}});
  EXPECT_TRUE(add_sections(once.file, {{".config", bytes("x")}}).file == other.file);
}

// A signer appends its certificate table at a quadword boundary, so an image
// made to be signed ends on one: the output with zeros after its last byte
// (here an odd-sized string table), the CheckSum over them.
TEST(PeAdd, PaddedForSigningEndsWithZerosToAQuadword) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  const auto input = build_pe(spec);
  const auto plain = add_sections(input, {{".config", kConfig}}).file;
  ASSERT_NE(plain.size() % 8, 0u) << "the test needs an output that does not end on a quadword";

  const auto padded = add_sections(input, {{".config", kConfig}}, {false, true}).file;
  ASSERT_EQ(padded.size(), (plain.size() + 7) / 8 * 8);
  std::vector<std::uint8_t> expected = plain;
  expected.resize(padded.size(), 0);
  const std::size_t checksum_at = xbb::test::kOptionalOffset + 64;
  std::memcpy(expected.data() + checksum_at, padded.data() + checksum_at, 4);
  EXPECT_TRUE(padded == expected) << "only the zeros and the CheckSum differ";
  EXPECT_EQ(xbb::pe::parse(padded).checksum, xbb::test::reference_checksum(padded));
  EXPECT_EQ(xbb::pe::output_size(xbb::pe::parse(input), input.size(), {{".config", kConfig.size()}},
                                 {false, true}),
            padded.size());

  const auto aligned = add_sections(plain, {}, {false, true}).file;
  EXPECT_TRUE(aligned == padded) << "nothing added, padding alone";
  EXPECT_TRUE(add_sections(padded, {}, {false, true}).file == padded) << "already on a quadword";
}

TEST(PeAdd, WithHeaderRoomNothingMoves) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.size_of_headers = 0x400;  // room for 15 headers
  const auto input = build_pe(spec);
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {{".config", kConfig}});
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  EXPECT_EQ(after.size_of_headers, 0x400u);
  for (std::size_t i = 0; i < before.sections.size(); ++i) {
    EXPECT_EQ(after.sections[i].pointer_to_raw_data, before.sections[i].pointer_to_raw_data);
  }
  EXPECT_TRUE(std::equal(input.begin() + 0x400, input.end(), result.file.begin() + 0x400));
  EXPECT_EQ(after.sections.back().virtual_address, before.size_of_image);
  EXPECT_EQ(after.sections.back().pointer_to_raw_data, input.size());
  expect_sections_kept(input, result.file);
}

TEST(PeAdd, WithoutHeaderRoomHeadersGrowByOneFileAlignment) {
  xbb::test::SyntheticPe spec;
  spec.sections = {{".text", pattern(0x345, 1), 0, 0x60000020},
                   {".data", pattern(0x123, 2), 0, 0xc0000040},
                   {".reloc", pattern(0x30, 3), 0, 0x42000040}};  // 3 headers end exactly at 0x200
  spec.debug_directory = false;
  const auto input = build_pe(spec);
  const xbb::pe::Image before = xbb::pe::parse(input);
  ASSERT_EQ(before.size_of_headers, 0x200u);
  const auto result = add_sections(input, {{".config", kConfig}});
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  EXPECT_EQ(after.size_of_headers, 0x400u);
  for (std::size_t i = 0; i < before.sections.size(); ++i) {
    EXPECT_EQ(after.sections[i].pointer_to_raw_data,
              before.sections[i].pointer_to_raw_data + 0x200);
  }
  expect_sections_kept(input, result.file);
}

TEST(PeAdd, HeadersGrowByWholeFileAlignmentsEvenFromAnOddSize) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.file_alignment = 0x20;
  spec.size_of_headers = 0x230;  // 4 headers end at 0x228; not a multiple of 0x20
  const auto input = build_pe(spec);
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {{".config", kConfig}});
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  EXPECT_EQ(after.size_of_headers, 0x250u);
  for (std::size_t i = 0; i < before.sections.size(); ++i) {
    if (before.sections[i].size_of_raw_data == 0) continue;
    EXPECT_EQ(after.sections[i].pointer_to_raw_data, before.sections[i].pointer_to_raw_data + 0x20);
  }
  expect_sections_kept(input, result.file);
}

TEST(PeAdd, DebugDirectoryPointerFollowsItsData) {
  xbb::test::SyntheticPe spec;
  spec.sections = {{".text", pattern(0x345, 1), 0, 0x60000020},
                   {".reloc", pattern(0x30, 3), 0, 0x42000040}};
  spec.debug_directory = true;  // 3 headers: no room for a fourth
  spec.build_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  const auto input = build_pe(spec);
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {{".config", kConfig}});
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  ASSERT_EQ(after.debug_entries.size(), 1u);
  EXPECT_EQ(after.debug_entries[0].pointer_to_raw_data,
            before.debug_entries[0].pointer_to_raw_data + 0x200);
  EXPECT_EQ(xbb::pe::build_id(result.file, after), "0102030405060708090a0b0c0d0e0f10");
  expect_sections_kept(input, result.file);
}

TEST(PeAdd, DebugSectionsPastRelocCount) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.sections.push_back({".debug_abbrev", pattern(0x1800, 7), 0, 0x42000040});
  spec.sections.push_back({".debug_info", pattern(0x2345, 8), 0, 0x42000040});
  const auto input = build_pe(spec);
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto& last = before.sections.back();
  ASSERT_EQ(last.name, ".debug_info");
  const auto result = add_sections(input, {{".config", kConfig}});
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  // .debug_info ends at 0x8000 + 0x2345: the next 4 KiB boundary is 0xb000.
  EXPECT_EQ(last.virtual_address + last.virtual_size, 0xa345u);
  EXPECT_EQ(after.sections.back().virtual_address, 0xb000u);
  EXPECT_EQ(xbb::pe::next_section_rva(before), 0xb000u);
  expect_sections_kept(input, result.file);
  EXPECT_EQ(symbols_and_strings(result.file, after), symbols_and_strings(input, before));
}

TEST(PeAdd, SignatureIsDroppedWithAWarning) {
  auto input = build_pe(xbb::test::xen_like());
  const auto unsigned_result = add_sections(input, {{".config", kConfig}});
  // A certificate table at the end of the file, as signing tools append it.
  const std::size_t table = input.size();
  const std::vector<std::uint8_t> certificate = pattern(0x108, 0x55);
  input.insert(input.end(), certificate.begin(), certificate.end());
  const std::size_t security = xbb::test::kOptionalOffset + 112 + 8 * 4;
  for (int i = 0; i < 4; ++i) input[security + i] = (table >> (8 * i)) & 0xff;
  for (int i = 0; i < 4; ++i) input[security + 4 + i] = (certificate.size() >> (8 * i)) & 0xff;
  ASSERT_TRUE(xbb::pe::parse(input).is_signed());

  const auto result = add_sections(input, {{".config", kConfig}});
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("dropped the Authenticode signature"), std::string::npos);
  EXPECT_FALSE(xbb::pe::parse(result.file).is_signed());
  EXPECT_TRUE(result.file == unsigned_result.file);
}

TEST(PeAdd, CertificateTableNotAtTheEndIsRefused) {
  auto input = build_pe(xbb::test::xen_like());
  input.resize(input.size() + 0x200, 0);
  const std::size_t security = xbb::test::kOptionalOffset + 112 + 8 * 4;
  const std::uint32_t table = static_cast<std::uint32_t>(input.size() - 0x200);
  for (int i = 0; i < 4; ++i) input[security + i] = (table >> (8 * i)) & 0xff;
  input[security + 4] = 0x10;
  EXPECT_NE(add_error(input, {{".config", kConfig}})
                .find("the certificate table (security directory) is not at the end"),
            std::string::npos);
}

TEST(PeAdd, CertificateTableOverlappingTheStringTableIsRefused) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.sections.push_back({".debug_info", pattern(0x40, 4), 0, 0x42000040});
  auto input = build_pe(spec);
  const std::size_t security = xbb::test::kOptionalOffset + 112 + 8 * 4;
  const auto table = static_cast<std::uint32_t>(input.size() - 8);  // the string table's last bytes
  for (int i = 0; i < 4; ++i) input[security + i] = (table >> (8 * i)) & 0xff;
  input[security + 4] = 8;
  char expected[96];
  std::snprintf(expected, sizeof expected,
                "the COFF symbol and string tables overlap the certificate table at 0x%x", table);
  const std::string message = add_error(input, {{".config", kConfig}});
  EXPECT_NE(message.find(expected), std::string::npos) << message;
}

TEST(PeAdd, RefusesToReplaceProgramSections) {
  const auto input = xbb::test::read_binary(xbb::test::xen417_efi());
  EXPECT_EQ(add_error(input, {{".text", kConfig}}),
            "offset 0x188: section 0 (.text) is part of the program (characteristics 0xe0000020), "
            "not an added data "
            "section; refusing to replace it");
  // .buildid has the added-section flags but holds the debug directory.
  EXPECT_NE(
      add_error(input, {{".buildid", kConfig}}).find("section 2 (.buildid) is part of the program"),
      std::string::npos);
}

TEST(PeAdd, RefusesBadNewSections) {
  const auto input = build_pe(xbb::test::xen_like());
  EXPECT_EQ(add_error(input, {{".configure", kConfig}}),
            "new section \".configure\": a name must have 1 to 8 characters (executables have no "
            "long section names)");
  EXPECT_EQ(add_error(input, {{"", kConfig}}),
            "new section \"\": a name must have 1 to 8 characters (executables have no long "
            "section names)");
  EXPECT_EQ(add_error(input, {{".config", {}}}), "new section \".config\": no contents");
  EXPECT_EQ(add_error(input, {{".config", kConfig}, {".config", kConfig}}),
            "new section \".config\": given twice");
}

TEST(PeAdd, RefusesToOverwriteUsedHeaderBytes) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.size_of_headers = 0x400;
  auto input = build_pe(spec);
  input[xbb::test::kSectionTableOffset + 4 * 40 + 3] = 0xcc;  // something after the table
  EXPECT_EQ(add_error(input, {{".config", kConfig}}),
            "offset 0x22b: the header area after the section table is in use; no room for 5 "
            "section headers");
}

TEST(PeAdd, RefusesToGrowHeadersIntoTheFirstSection) {
  xbb::test::SyntheticPe spec;
  spec.section_alignment = 0x200;
  spec.sections = {{".text", pattern(0x345, 1), 0, 0x60000020},
                   {".data", pattern(0x123, 2), 0, 0xc0000040},
                   {".reloc", pattern(0x30, 3), 0, 0x42000040}};
  const auto input = build_pe(spec);
  EXPECT_EQ(add_error(input, {{".config", kConfig}}),
            "SizeOfHeaders would have to grow to 0x400, past the first section's RVA 0x200");
}

TEST(PeAdd, RefusesElf) {
  const auto gz = xbb::test::read_binary(xbb::test::xen417_gz());
  const std::string message = add_error(gz, {{".config", kConfig}});
  EXPECT_NE(message.find("the bootspec must point at xen.efi"), std::string::npos) << message;
}

}  // namespace
