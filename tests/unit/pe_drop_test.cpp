// Leaving out the DISCARDABLE .debug_* sections (alone or while adding
// sections), a plain copy when there is nothing to do, and output_size()
// against the size of what add_sections() writes.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

using xbb::pe::add_sections;
using xbb::pe::AddOptions;
using xbb::pe::NewSection;
using xbb::test::build_pe;
using xbb::test::pattern;

const AddOptions kDrop{.drop_debug_sections = true};

std::vector<std::uint8_t> bytes(const std::string& text) { return {text.begin(), text.end()}; }

const std::vector<std::uint8_t> kConfig =
    bytes("[global]\ndefault=xen\n\n[xen]\noptions=console=vga\nkernel=vmlinuz\n");

std::string error_of(auto&& action) {
  try {
    action();
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return "no error";
}

std::vector<std::string> names(const xbb::pe::Image& image) {
  std::vector<std::string> result;
  for (const auto& section : image.sections) result.push_back(section.name);
  return result;
}

std::uint64_t align_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

void put32(std::vector<std::uint8_t>& file, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) file[offset + i] = (value >> (8 * i)) & 0xff;
}

// The sections of `after` named like those of `before` have the same header
// fields (raw data moved by `shift`) and the same contents.
void expect_kept(const std::vector<std::uint8_t>& before, const std::vector<std::uint8_t>& after,
                 const std::vector<std::string>& kept_names) {
  const xbb::pe::Image old_image = xbb::pe::parse(before);
  const xbb::pe::Image new_image = xbb::pe::parse(after);
  for (const std::string& name : kept_names) {
    const auto find = [&](const xbb::pe::Image& image) {
      return *std::find_if(image.sections.begin(), image.sections.end(),
                           [&](const auto& section) { return section.name == name; });
    };
    const xbb::pe::Section old_section = find(old_image);
    const xbb::pe::Section new_section = find(new_image);
    EXPECT_EQ(new_section.virtual_address, old_section.virtual_address) << name;
    EXPECT_EQ(new_section.virtual_size, old_section.virtual_size) << name;
    EXPECT_EQ(new_section.size_of_raw_data, old_section.size_of_raw_data) << name;
    EXPECT_EQ(new_section.characteristics, old_section.characteristics) << name;
    EXPECT_EQ(new_section.pointer_to_raw_data % new_image.file_alignment, 0u) << name;
    EXPECT_EQ(xbb::pe::section_contents(after, new_image, name),
              xbb::pe::section_contents(before, old_image, name))
        << name;
  }
}

std::vector<std::uint8_t> symbols_and_strings(const std::vector<std::uint8_t>& file) {
  return {file.begin() + xbb::pe::parse(file).pointer_to_symbol_table, file.end()};
}

// objdump -t as "name:section number", in table order.
std::vector<std::string> objdump_symbols(const std::vector<std::uint8_t>& file) {
  const xbb::test::TempDir dir;
  xbb::test::write_binary(dir / "image.efi", file);
  const xbb::test::RunResult result =
      xbb::test::run({"objdump", "-t", (dir / "image.efi").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  static const std::regex kLine(R"(^\[ *\d+\]\(sec *(-?\d+)\).* (\S+)$)");
  std::vector<std::string> symbols;
  std::istringstream lines(result.out);
  std::string line;
  std::smatch match;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, match, kLine))
      symbols.push_back(match[2].str() + ":" + match[1].str());
  }
  return symbols;
}

// .text, .debug_abbrev, .data, .bss, .reloc, .debug_info: a debug section
// between the program's own, and one at the end; one symbol per section.
xbb::test::SyntheticPe interleaved() {
  xbb::test::SyntheticPe spec;
  spec.symbol_table = true;
  spec.sections = {{".text", pattern(0x345, 1), 0, 0x60000020},
                   {".debug_abbrev", pattern(0x1800, 7), 0, 0x42000040},
                   {".data", pattern(0x123, 2), 0, 0xc0000040},
                   {".bss", {}, 0x2000, 0xc0000080},
                   {".reloc", pattern(0x30, 3), 0, 0x42000040},
                   {".debug_info", pattern(0x2345, 8), 0, 0x42000040}};
  return spec;
}

TEST(PeDrop, NothingToAddOrLeaveOutIsAByteForByteCopy) {
  const auto xen417 = xbb::test::read_binary(xbb::test::xen417_efi());  // no debug sections
  EXPECT_TRUE(add_sections(xen417, {}).file == xen417);
  EXPECT_TRUE(add_sections(xen417, {}, kDrop).file == xen417);

  auto signed_image = build_pe(xbb::test::xen_like());
  const auto table = static_cast<std::uint32_t>(signed_image.size());
  const std::vector<std::uint8_t> certificate = pattern(0x108, 0x55);
  signed_image.insert(signed_image.end(), certificate.begin(), certificate.end());
  put32(signed_image, xbb::test::kOptionalOffset + 112 + 8 * 4, table);
  put32(signed_image, xbb::test::kOptionalOffset + 112 + 8 * 4 + 4, 0x108);
  const auto copy = add_sections(signed_image, {}, kDrop);
  EXPECT_TRUE(copy.file == signed_image);
  EXPECT_TRUE(copy.warnings.empty());
  EXPECT_TRUE(xbb::pe::parse(copy.file).is_signed());
}

TEST(PeDrop, Xen420LeavesOutItsNineDebugSections) {
  const auto input = xbb::test::read_binary(xbb::test::xen420_efi());
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {}, kDrop);
  EXPECT_TRUE(result.warnings.empty());
  const xbb::pe::Image after = xbb::pe::parse(result.file);

  const std::vector<std::string> kept = {
      ".text", ".data", ".bss", ".rodata", ".buildid", ".init", ".data.read_mostly", ".reloc"};
  EXPECT_EQ(names(after),
            (std::vector<std::string>{".text", ".rodata", ".buildid", ".init", ".data.read_mostly",
                                      ".data", ".bss", ".reloc"}));
  expect_kept(input, result.file, kept);
  // Nothing in front of the debug sections moves.
  for (std::size_t i = 0; i < after.sections.size(); ++i) {
    EXPECT_EQ(after.sections[i].pointer_to_raw_data, before.sections[i].pointer_to_raw_data);
  }

  // .reloc ends at 0x948248 + 0x1560 = 0x9497a8; SizeOfImage is that rounded
  // up to 2 MiB, the end of the 2 MiB page Xen maps its data with.
  EXPECT_EQ(after.size_of_image, 0xa00000u);
  EXPECT_EQ(after.size_of_headers, before.size_of_headers);
  EXPECT_EQ(after.size_of_initialized_data, before.size_of_initialized_data);
  EXPECT_EQ(after.size_of_initialized_data, 0x117d40u);

  // The debug sections' raw data (26 MB) is gone; the symbol and string
  // tables follow .reloc's raw data, unchanged (no symbol refers to a debug
  // section, and none of the kept sections is renumbered).
  std::uint64_t debug_bytes = 0;
  for (std::size_t i = 8; i < before.sections.size(); ++i)
    debug_bytes += before.sections[i].size_of_raw_data;
  EXPECT_EQ(result.file.size(), input.size() - debug_bytes);
  EXPECT_LT(result.file.size(), 3'000'000u);
  EXPECT_EQ(after.pointer_to_symbol_table, 0x278ec0u + 0x1560u);
  EXPECT_EQ(after.number_of_symbols, before.number_of_symbols);
  EXPECT_EQ(symbols_and_strings(result.file), symbols_and_strings(input));

  EXPECT_EQ(xbb::pe::build_id(result.file, after), xbb::pe::build_id(input, before));
  EXPECT_EQ(after.checksum, xbb::test::reference_checksum(result.file));
}

TEST(PeDrop, Xen420ConfigGoesAfterTheHighestKeptSection) {
  const auto input = xbb::test::read_binary(xbb::test::xen420_efi());
  const auto result = add_sections(input, {{".config", kConfig}}, kDrop);
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  ASSERT_EQ(after.sections.size(), 9u);
  const xbb::pe::Section& config = after.sections[8];
  EXPECT_EQ(config.name, ".config");
  EXPECT_EQ(after.image_base + config.virtual_address, 0xffff82d040a00000u);
  EXPECT_EQ(config.pointer_to_raw_data, 0x27a420u);  // right after .reloc's raw data
  EXPECT_EQ(xbb::pe::section_contents(result.file, after, ".config"), kConfig);
  EXPECT_EQ(after.size_of_image, 0xc00000u);
  EXPECT_EQ(after.size_of_headers, 0x440u);  // nine headers fit: no growth
  EXPECT_EQ(after.size_of_initialized_data, 0x117d40u + config.size_of_raw_data);
  EXPECT_EQ(after.pointer_to_symbol_table, config.pointer_to_raw_data + config.size_of_raw_data);
  EXPECT_EQ(symbols_and_strings(result.file), symbols_and_strings(input));
  EXPECT_EQ(after.checksum, xbb::test::reference_checksum(result.file));
  expect_kept(input, result.file, {".text", ".rodata", ".data.read_mostly", ".reloc"});

  // Again with the same section: the same bytes.
  EXPECT_TRUE(add_sections(result.file, {{".config", kConfig}}, kDrop).file == result.file);
  // From an image that got its .config above the debug sections: the same
  // sections at the same places (only SizeOfHeaders, grown for 18 headers, differs).
  const auto earlier = add_sections(input, {{".config", kConfig}});
  const auto redone = add_sections(earlier.file, {{".config", kConfig}}, kDrop);
  const xbb::pe::Image redone_image = xbb::pe::parse(redone.file);
  ASSERT_EQ(redone_image.sections.size(), 9u);
  EXPECT_EQ(redone_image.sections[8].virtual_address, config.virtual_address);
  EXPECT_EQ(redone_image.size_of_image, 0xc00000u);
  EXPECT_EQ(xbb::pe::section_contents(redone.file, redone_image, ".config"), kConfig);
}

TEST(PeDrop, KeptSectionsAfterALeftOutOneMoveUpAndKeepTheirSymbols) {
  const auto input = build_pe(interleaved());
  const xbb::pe::Image before = xbb::pe::parse(input);
  const auto result = add_sections(input, {}, kDrop);
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  EXPECT_EQ(names(after), (std::vector<std::string>{".text", ".data", ".bss", ".reloc"}));
  expect_kept(input, result.file, {".text", ".data", ".bss", ".reloc"});
  // .debug_abbrev's 0x1800 bytes of raw data are cut out of the middle.
  EXPECT_EQ(after.sections[1].pointer_to_raw_data, before.sections[2].pointer_to_raw_data - 0x1800);
  EXPECT_EQ(after.sections[3].pointer_to_raw_data, before.sections[4].pointer_to_raw_data - 0x1800);
  // SizeOfImage ends at .reloc, the highest kept section; the base
  // relocation directory still points at it.
  EXPECT_EQ(after.size_of_image, align_up(after.sections[3].virtual_address + 0x30, 0x1000));
  EXPECT_EQ(after.data_directories[5].virtual_address, after.sections[3].virtual_address);
  // Section numbers follow the new table; the left-out sections' symbols
  // become IMAGE_SYM_DEBUG (objdump: "sec -2").
  EXPECT_EQ(objdump_symbols(input),
            (std::vector<std::string>{".text:1", ".debug_abbrev:2", ".data:3", ".bss:4", ".reloc:5",
                                      ".debug_info:6"}));
  EXPECT_EQ(objdump_symbols(result.file),
            (std::vector<std::string>{".text:1", ".debug_abbrev:-2", ".data:2", ".bss:3",
                                      ".reloc:4", ".debug_info:-2"}));
  EXPECT_EQ(after.checksum, xbb::test::reference_checksum(result.file));

  // Adding at the same time: the new section follows .reloc.
  const auto with_config = add_sections(input, {{".config", kConfig}}, kDrop);
  const xbb::pe::Image config_image = xbb::pe::parse(with_config.file);
  EXPECT_EQ(config_image.sections.back().virtual_address, after.size_of_image);
  EXPECT_EQ(objdump_symbols(with_config.file), objdump_symbols(result.file));
}

TEST(PeDrop, RawDataNotAWholeNumberOfFileAlignmentsLeavesZeros) {
  auto input = build_pe(interleaved());
  const xbb::pe::Image before = xbb::pe::parse(input);
  // .debug_abbrev claims 0x17f0 bytes: cutting them would misalign .data.
  put32(input, xbb::test::kSectionTableOffset + 40 + 16, 0x17f0);
  const auto result = add_sections(input, {}, kDrop);
  const xbb::pe::Image after = xbb::pe::parse(result.file);
  const std::uint32_t hole = before.sections[1].pointer_to_raw_data;
  EXPECT_EQ(after.sections[1].pointer_to_raw_data, before.sections[2].pointer_to_raw_data - 0x1600);
  expect_kept(input, result.file, {".text", ".data", ".bss", ".reloc"});
  // The remaining 0x1f0 bytes of .debug_abbrev are zeroed; the 0x10 bytes
  // after it, in no section, are kept.
  EXPECT_TRUE(std::all_of(result.file.begin() + hole, result.file.begin() + hole + 0x1f0,
                          [](std::uint8_t byte) { return byte == 0; }));
  EXPECT_TRUE(std::equal(result.file.begin() + hole + 0x1f0, result.file.begin() + hole + 0x200,
                         input.begin() + hole + 0x17f0));
}

TEST(PeDrop, ReplacedSectionsSymbolsGoToTheirReplacement) {
  xbb::test::SyntheticPe spec = interleaved();
  spec.sections.push_back({".config", pattern(0x15, 6), 0, 0x40000040});
  const auto input = build_pe(spec);
  const auto result = add_sections(input, {{".config", kConfig}}, kDrop);
  EXPECT_EQ(objdump_symbols(result.file),
            (std::vector<std::string>{".text:1", ".debug_abbrev:-2", ".data:2", ".bss:3",
                                      ".reloc:4", ".debug_info:-2", ".config:5"}));
  const xbb::pe::Image image = xbb::pe::parse(result.file);
  EXPECT_EQ(image.sections[4].name, ".config");
  EXPECT_EQ(xbb::pe::section_contents(result.file, image, ".config"), kConfig);
}

TEST(PeDrop, RefusesToLeaveOutADebugSectionTheProgramUses) {
  auto input = build_pe(interleaved());
  const xbb::pe::Image image = xbb::pe::parse(input);
  // The exception directory (entry 3) inside .debug_info.
  put32(input, xbb::test::kOptionalOffset + 112 + 8 * 3, image.sections[5].virtual_address + 0x10);
  put32(input, xbb::test::kOptionalOffset + 112 + 8 * 3 + 4, 0x20);
  const std::string expected =
      "offset 0x250: section 5 (.debug_info) holds a data directory or the entry point; refusing "
      "to leave it out";
  EXPECT_EQ(error_of([&] { add_sections(input, {}, kDrop); }), expected);
  EXPECT_EQ(error_of([&] { xbb::pe::output_size(xbb::pe::parse(input), input.size(), {}, kDrop); }),
            expected);
  EXPECT_EQ(error_of([&] { add_sections(input, {}); }), "no error");
}

TEST(PeDrop, RefusesPointersIntoLeftOutData) {
  xbb::test::SyntheticPe spec = interleaved();
  spec.debug_directory = true;
  auto input = build_pe(spec);
  const xbb::pe::Image image = xbb::pe::parse(input);
  ASSERT_EQ(image.sections[2].name, ".debug_abbrev");
  // The CodeView record's PointerToRawData moved into .debug_abbrev.
  const std::uint32_t inside = image.sections[2].pointer_to_raw_data + 0x40;
  put32(input, image.debug_directory_offset + 24, inside);
  char expected[128];
  std::snprintf(expected, sizeof expected,
                "debug directory entry PointerToRawData 0x%x points into the raw data of a "
                "removed section",
                inside);
  EXPECT_EQ(error_of([&] { add_sections(input, {}, kDrop); }), expected);
  EXPECT_EQ(error_of([&] { xbb::pe::output_size(xbb::pe::parse(input), input.size(), {}, kDrop); }),
            expected);
}

// output_size() against the size of what add_sections() writes, or the same
// error, for every input, option and set of new sections here.
TEST(PeOutputSize, EqualsTheSizeOfTheWrittenFile) {
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> inputs = xbb::test::fuzz_seeds();
  const auto xen417 = xbb::test::read_binary(xbb::test::xen417_efi());
  const auto xen420 = xbb::test::read_binary(xbb::test::xen420_efi());
  inputs.push_back({"xen417", xen417});
  inputs.push_back({"xen420", xen420});
  inputs.push_back({"xen417+config", add_sections(xen417, {{".config", kConfig}}).file});
  inputs.push_back({"xen420+config", add_sections(xen420, {{".config", kConfig}}).file});
  inputs.push_back({"interleaved", build_pe(interleaved())});

  const std::vector<std::vector<NewSection>> section_sets = {
      {},
      {{".config", kConfig}},
      {{".config", bytes("x")}},
      {{".kernel", pattern(0x300001, 5)}},
      {{".config", kConfig}, {".kernel", pattern(0x300001, 5)}, {".ramdisk", pattern(0x1234, 6)}},
      {{".text", kConfig}},  // refused: replaces program code
  };
  std::size_t compared = 0;
  for (const auto& [name, input] : inputs) {
    if (name == "pe32.efi") continue;
    const xbb::pe::Image image = xbb::pe::parse(input);
    for (const auto& sections : section_sets) {
      std::vector<xbb::pe::NewSectionSize> sizes;
      for (const NewSection& section : sections)
        sizes.push_back({section.name, section.data.size()});
      for (const AddOptions& options : {AddOptions{}, kDrop}) {
        const std::string what = name + " +" + std::to_string(sections.size()) +
                                 (options.drop_debug_sections ? " drop" : "");
        std::uint64_t written = 0;
        const std::string add_message =
            error_of([&] { written = add_sections(input, sections, options).file.size(); });
        std::uint64_t predicted = 0;
        const std::string size_message = error_of(
            [&] { predicted = xbb::pe::output_size(image, input.size(), sizes, options); });
        EXPECT_EQ(size_message, add_message) << what;
        EXPECT_EQ(predicted, written) << what;
        compared += add_message == "no error";
      }
    }
  }
  EXPECT_GE(compared, 100u);
}

}  // namespace
