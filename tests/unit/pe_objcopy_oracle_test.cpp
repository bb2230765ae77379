// GNU binutils as an independent oracle for add_sections: objcopy adds the
// same section (we hand it the address) or strips the debug sections, objdump
// reads both results, and the two must agree on every section, every original
// section's contents and the headers. Programs are started with fixed argument vectors, never a
// shell.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pe_builder.hpp"
#include "pe_test_util.hpp"
#include "xbb/pe.hpp"

namespace {

namespace fs = std::filesystem;
using xbb::test::pattern;
using xbb::test::RunResult;
using xbb::test::TempDir;

const std::string kConfigText =
    "[global]\ndefault=xen\n\n[xen]\noptions=console=com1 dom0_mem=2G\nkernel=vmlinuz\n";
const std::vector<std::uint8_t> kConfig(kConfigText.begin(), kConfigText.end());

struct ObjdumpSection {
  std::string name;
  std::uint64_t size = 0;
  std::uint64_t vma = 0;
  std::uint64_t file_offset = 0;
  std::string flags;
};

RunResult run_checked(const std::vector<std::string>& argv) {
  RunResult result = xbb::test::run(argv);
  EXPECT_EQ(result.exit_code, 0) << argv[0] << " " << argv[1] << ": " << result.err;
  return result;
}

// `objdump -h`, which must succeed without a word on stderr.
std::vector<ObjdumpSection> objdump_sections(const fs::path& file) {
  const RunResult result = run_checked({"objdump", "-h", file.string()});
  EXPECT_EQ(result.err, "") << file;
  std::vector<ObjdumpSection> sections;
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    int index = -1;
    ObjdumpSection section;
    std::string lma;
    std::string align;
    if (!(fields >> index >> section.name >> std::hex >> section.size >> section.vma >> lma >>
          section.file_offset >> align) ||
        align.rfind("2**", 0) != 0) {
      continue;
    }
    std::getline(lines, section.flags);
    section.flags.erase(0, section.flags.find_first_not_of(' '));
    sections.push_back(section);
  }
  return sections;
}

// `objdump -p` as "field -> value" for its "Name<tabs>value" lines, plus the
// whole text; it must succeed without a word on stderr.
struct PrivateHeaders {
  std::map<std::string, std::string> fields;
  std::string text;
};

PrivateHeaders objdump_private_headers(const fs::path& file) {
  const RunResult result = run_checked({"objdump", "-p", file.string()});
  EXPECT_EQ(result.err, "") << file;
  PrivateHeaders headers;
  headers.text = result.out;
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos || tab == 0) continue;
    const auto value = line.find_first_not_of('\t', tab);
    if (value != std::string::npos) headers.fields[line.substr(0, tab)] = line.substr(value);
  }
  return headers;
}

std::uint64_t hex_value(const std::string& text) { return std::stoull(text, nullptr, 16); }

std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Where the new section must go, from objdump's reading of the input alone:
// the end of the highest section of all, never below SizeOfImage, rounded up
// to SectionAlignment.
std::uint64_t expected_vma(const fs::path& input) {
  const PrivateHeaders headers = objdump_private_headers(input);
  const std::uint64_t image_base = hex_value(headers.fields.at("ImageBase"));
  std::uint64_t end = image_base + hex_value(headers.fields.at("SizeOfImage"));
  for (const ObjdumpSection& section : objdump_sections(input))
    end = std::max(end, section.vma + section.size);
  return round_up(end, hex_value(headers.fields.at("SectionAlignment")));
}

std::string hex_address(std::uint64_t value) {
  std::ostringstream text;
  text << "0x" << std::hex << value;
  return text.str();
}

void objcopy_add_config(const fs::path& input, const fs::path& config, std::uint64_t vma,
                        const fs::path& output) {
  run_checked({"objcopy", "--add-section", ".config=" + config.string(), "--change-section-vma",
               ".config=" + hex_address(vma), "--set-section-flags",
               ".config=contents,alloc,load,readonly,data", input.string(), output.string()});
}

// Every section with contents, extracted with objcopy --dump-section (which,
// unlike -O binary, also extracts the non-loadable .debug_* sections).
std::map<std::string, std::vector<std::uint8_t>> dump_sections(const fs::path& file,
                                                               const TempDir& dir,
                                                               const std::string& tag) {
  std::vector<std::string> argv = {"objcopy"};
  std::vector<std::string> names;
  for (const ObjdumpSection& section : objdump_sections(file)) {
    if (section.flags.find("CONTENTS") == std::string::npos) continue;
    names.push_back(section.name);
    argv.push_back("--dump-section");
    argv.push_back(section.name + "=" + (dir / (tag + section.name)).string());
  }
  argv.push_back(file.string());
  argv.push_back((dir / (tag + "-dump-output")).string());
  run_checked(argv);
  std::map<std::string, std::vector<std::uint8_t>> contents;
  for (const std::string& name : names) contents[name] = xbb::test::read_binary(dir / (tag + name));
  return contents;
}

// Compares our output with objcopy's for `input` and returns our output.
std::vector<std::uint8_t> check_against_objcopy(const fs::path& input, const TempDir& dir) {
  const fs::path config = dir / "config";
  const fs::path ours = dir / "ours.efi";
  const fs::path theirs = dir / "objcopy.efi";
  xbb::test::write_binary(config, kConfig);

  const auto result = xbb::pe::add_sections(xbb::test::read_binary(input), {{".config", kConfig}});
  xbb::test::write_binary(ours, result.file);
  const std::uint64_t vma = expected_vma(input);
  objcopy_add_config(input, config, vma, theirs);

  // Same sections, same order, same sizes, addresses and flags; ours at the
  // address computed from objdump's view of the input.
  const auto our_sections = objdump_sections(ours);
  const auto their_sections = objdump_sections(theirs);
  const auto input_sections = objdump_sections(input);
  EXPECT_EQ(our_sections.size(), input_sections.size() + 1);
  EXPECT_EQ(our_sections.size(), their_sections.size());
  for (std::size_t i = 0; i < std::min(our_sections.size(), their_sections.size()); ++i) {
    EXPECT_EQ(our_sections[i].name, their_sections[i].name) << i;
    EXPECT_EQ(our_sections[i].size, their_sections[i].size) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].vma, their_sections[i].vma) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].flags, their_sections[i].flags) << our_sections[i].name;
  }
  EXPECT_EQ(our_sections.back().name, ".config");
  EXPECT_EQ(our_sections.back().vma, vma);
  EXPECT_EQ(our_sections.back().size, kConfig.size());

  // Same contents of every original section, byte for byte, in the input,
  // our output and objcopy's.
  const auto input_contents = dump_sections(input, dir, "input");
  const auto our_contents = dump_sections(ours, dir, "ours");
  const auto their_contents = dump_sections(theirs, dir, "theirs");
  EXPECT_EQ(our_contents.size(), input_contents.size() + 1);
  for (const auto& [name, bytes] : input_contents) {
    EXPECT_FALSE(bytes.empty()) << name;
    if (!our_contents.count(name) || !their_contents.count(name)) {
      ADD_FAILURE() << name << " is missing from an output";
      continue;
    }
    EXPECT_TRUE(our_contents.at(name) == their_contents.at(name)) << name;
    if (name != ".buildid") {  // .buildid holds the debug entry's file offset, which moves
      EXPECT_TRUE(our_contents.at(name) == bytes) << name;
    }
  }

  // objcopy -O binary --only-section=.config extracts exactly our bytes.
  const fs::path extracted = dir / "config.bin";
  run_checked(
      {"objcopy", "-O", "binary", "--only-section=.config", ours.string(), extracted.string()});
  EXPECT_EQ(xbb::test::read_binary(extracted), kConfig);

  // The headers objdump shows agree, apart from objcopy's time stamp and the
  // checksum that depends on it; the checksums are right for each file.
  PrivateHeaders our_headers = objdump_private_headers(ours);
  PrivateHeaders their_headers = objdump_private_headers(theirs);
  EXPECT_EQ(hex_value(our_headers.fields.at("CheckSum")),
            xbb::test::reference_checksum(result.file));
  EXPECT_EQ(hex_value(their_headers.fields.at("CheckSum")),
            xbb::test::reference_checksum(xbb::test::read_binary(theirs)));
  for (const char* field :
       {"ImageBase", "SectionAlignment", "FileAlignment", "SizeOfImage", "SizeOfHeaders",
        "SizeOfCode", "SizeOfInitializedData", "SizeOfUninitializedData", "AddressOfEntryPoint",
        "Subsystem", "NumberOfRvaAndSizes", "Characteristics", "DllCharacteristics"}) {
    EXPECT_EQ(our_headers.fields[field], their_headers.fields[field]) << field;
  }
  const auto data_directories = [](const std::string& text) {
    const auto start = text.find("The Data Directory");
    return text.substr(start, text.find("\n\n", start) - start);
  };
  EXPECT_EQ(data_directories(our_headers.text), data_directories(their_headers.text));
  return result.file;
}

// The debug directory as objdump prints it: "(format RSDS signature <guid> age 1 ...)".
std::string objdump_codeview_line(const fs::path& file) {
  const std::string text = objdump_private_headers(file).text;
  const auto start = text.find("(format RSDS signature ");
  if (start == std::string::npos) return "no CodeView record";
  return text.substr(start, text.find('\n', start) - start);
}

// objdump prints the signature as a GUID: its first three fields byte-swapped.
std::string guid_to_file_order(const std::string& guid) {
  const auto swap = [&](std::size_t begin, std::size_t bytes) {
    std::string out;
    for (std::size_t i = bytes; i > 0; --i) out += guid.substr(begin + 2 * (i - 1), 2);
    return out;
  };
  return swap(0, 4) + swap(8, 2) + swap(12, 2) + guid.substr(16);
}

TEST(PeObjcopyOracle, Xen417) {
  const TempDir dir;
  const auto ours = check_against_objcopy(xbb::test::xen417_efi(), dir);
  EXPECT_EQ(expected_vma(xbb::test::xen417_efi()), 0xffff82d041000000u);

  // On this image objcopy writes the very same file, except the COFF time
  // stamp (objcopy puts the current time there) and so the checksum.
  auto theirs = xbb::test::read_binary(dir / "objcopy.efi");
  ASSERT_EQ(theirs.size(), ours.size());
  constexpr std::size_t kTimeDateStamp = 0x88;
  constexpr std::size_t kCheckSum = 0xd8;
  std::copy_n(ours.begin() + kTimeDateStamp, 4, theirs.begin() + kTimeDateStamp);
  std::copy_n(ours.begin() + kCheckSum, 4, theirs.begin() + kCheckSum);
  EXPECT_TRUE(theirs == ours);

  // The debug directory still leads objdump to the same CodeView record.
  EXPECT_EQ(objdump_codeview_line(dir / "ours.efi"),
            objdump_codeview_line(xbb::test::xen417_efi()));
}

TEST(PeObjcopyOracle, Xen420) {
  const TempDir dir;
  check_against_objcopy(xbb::test::xen420_efi(), dir);
  EXPECT_EQ(expected_vma(xbb::test::xen420_efi()), 0xffff82d042400000u);
  EXPECT_EQ(objdump_codeview_line(dir / "ours.efi"),
            objdump_codeview_line(xbb::test::xen420_efi()));
}

TEST(PeObjcopyOracle, BuildIdAgreesWithObjdump) {
  for (const fs::path& path : {xbb::test::xen417_efi(), xbb::test::xen420_efi()}) {
    const std::string line = objdump_codeview_line(path);
    const std::string guid = line.substr(std::string("(format RSDS signature ").size(), 32);
    const auto file = xbb::test::read_binary(path);
    EXPECT_EQ(xbb::pe::build_id(file, xbb::pe::parse(file)), guid_to_file_order(guid)) << line;
  }
}

void check_synthetic(const xbb::test::SyntheticPe& spec) {
  const TempDir dir;
  const fs::path input = dir / "input.efi";
  xbb::test::write_binary(input, xbb::test::build_pe(spec));
  check_against_objcopy(input, dir);
}

TEST(PeObjcopyOracle, SyntheticWithHeaderRoom) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.size_of_headers = 0x400;
  check_synthetic(spec);
}

TEST(PeObjcopyOracle, SyntheticWithoutHeaderRoom) {
  xbb::test::SyntheticPe spec;
  spec.sections = {{".text", pattern(0x345, 1), 0, 0x60000020},
                   {".data", pattern(0x123, 2), 0, 0xc0000040},
                   {".reloc", pattern(0x30, 3), 0, 0x42000040}};
  check_synthetic(spec);
}

TEST(PeObjcopyOracle, SyntheticWithDebugDirectory) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.debug_directory = true;
  spec.build_id = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};
  const TempDir dir;
  const fs::path input = dir / "input.efi";
  xbb::test::write_binary(input, xbb::test::build_pe(spec));
  check_against_objcopy(input, dir);
  EXPECT_EQ(objdump_codeview_line(dir / "ours.efi"), objdump_codeview_line(input));
  EXPECT_NE(objdump_codeview_line(input), "no CodeView record");
}

TEST(PeObjcopyOracle, SyntheticWithDebugSectionsPastRelocAndSymbols) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.sections.push_back({".debug_abbrev", pattern(0x1800, 7), 0, 0x42000040});
  spec.sections.push_back({".debug_info", pattern(0x2345, 8), 0, 0x42000040});
  check_synthetic(spec);
}

// Leaving out the debug sections, against objcopy --strip-debug.

// The end of the highest section, from objdump's view of `file`, rounded up
// to SectionAlignment: where the sections end in memory.
std::uint64_t sections_end(const fs::path& file) {
  const PrivateHeaders headers = objdump_private_headers(file);
  std::uint64_t end = 0;
  for (const ObjdumpSection& section : objdump_sections(file))
    end = std::max(end, section.vma + section.size);
  return round_up(end, hex_value(headers.fields.at("SectionAlignment")));
}

// Every section with contents, as `objcopy -O binary --only-section` extracts it.
std::map<std::string, std::vector<std::uint8_t>> binary_sections(const fs::path& file,
                                                                 const TempDir& dir,
                                                                 const std::string& tag) {
  std::map<std::string, std::vector<std::uint8_t>> contents;
  for (const ObjdumpSection& section : objdump_sections(file)) {
    if (section.flags.find("CONTENTS") == std::string::npos) continue;
    const fs::path out = dir / (tag + section.name + ".bin");
    run_checked(
        {"objcopy", "-O", "binary", "--only-section=" + section.name, file.string(), out.string()});
    contents[section.name] = xbb::test::read_binary(out);
  }
  return contents;
}

// objdump -t's symbol lines without their index: "(sec  1)(fl 0x00)(ty 0)(scl 3) (nx 0) 0x...
// name".
std::multiset<std::string> objdump_symbol_lines(const fs::path& file) {
  const RunResult result = run_checked({"objdump", "-t", file.string()});
  EXPECT_EQ(result.err, "") << file;
  std::multiset<std::string> symbols;
  std::istringstream lines(result.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("[", 0) == 0) symbols.insert(line.substr(line.find(']') + 1));
  }
  return symbols;
}

// Compares add_sections(input, {}, drop) with objcopy --strip-debug; returns our output.
std::vector<std::uint8_t> check_against_strip_debug(const fs::path& input, const TempDir& dir) {
  const fs::path ours = dir / "ours.efi";
  const fs::path theirs = dir / "stripped.efi";
  const auto result =
      xbb::pe::add_sections(xbb::test::read_binary(input), {}, {.drop_debug_sections = true});
  EXPECT_TRUE(result.warnings.empty());
  xbb::test::write_binary(ours, result.file);
  run_checked({"objcopy", "--strip-debug", input.string(), theirs.string()});

  // The same sections: names, sizes, addresses, flags; none for debugging.
  const auto our_sections = objdump_sections(ours);
  const auto their_sections = objdump_sections(theirs);
  EXPECT_EQ(our_sections.size(), their_sections.size());
  for (std::size_t i = 0; i < std::min(our_sections.size(), their_sections.size()); ++i) {
    EXPECT_EQ(our_sections[i].name, their_sections[i].name) << i;
    EXPECT_EQ(our_sections[i].size, their_sections[i].size) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].vma, their_sections[i].vma) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].flags, their_sections[i].flags) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].flags.find("DEBUGGING"), std::string::npos) << our_sections[i].name;
  }

  // The same bytes in each section. .buildid holds the debug directory entry's
  // file offset, which objcopy moves (it shrinks SizeOfHeaders) and we do not.
  const auto input_contents = binary_sections(input, dir, "input");
  const auto our_contents = binary_sections(ours, dir, "ours");
  const auto their_contents = binary_sections(theirs, dir, "theirs");
  EXPECT_EQ(our_contents.size(), their_contents.size());
  for (const auto& [name, bytes] : their_contents) {
    if (!our_contents.count(name)) {
      ADD_FAILURE() << name << " is missing from our output";
      continue;
    }
    EXPECT_TRUE(our_contents.at(name) == input_contents.at(name)) << name;
    if (name != ".buildid") {
      EXPECT_TRUE(our_contents.at(name) == bytes) << name;
    }
  }
  EXPECT_EQ(objdump_codeview_line(ours), objdump_codeview_line(input));

  // Headers. The same: everything but SizeOfImage, SizeOfHeaders,
  // Characteristics, the time stamp and the checksum.
  // - SizeOfImage: ours is the end of the highest section rounded up to
  //   SectionAlignment (the PE specification wants a multiple of it); BFD adds
  //   the last section's size, rounded up to SectionAlignment, to its unaligned
  //   address (Xen 4.20: 0x948248 + 0x200000 = 0xb48248).
  // - SizeOfHeaders: objcopy shrinks the headers to the fewer section headers
  //   and moves all raw data up; we never shrink them.
  // - Characteristics: objcopy sets IMAGE_FILE_DEBUG_STRIPPED (0x200) and
  //   IMAGE_FILE_LINE_NUMS_STRIPPED (0x4); we leave the field alone, as the
  //   debug directory and its CodeView record stay.
  const PrivateHeaders our_headers = objdump_private_headers(ours);
  const PrivateHeaders their_headers = objdump_private_headers(theirs);
  for (const char* field :
       {"ImageBase", "SectionAlignment", "FileAlignment", "SizeOfCode", "SizeOfInitializedData",
        "SizeOfUninitializedData", "AddressOfEntryPoint", "Subsystem", "NumberOfRvaAndSizes",
        "DllCharacteristics"}) {
    EXPECT_EQ(our_headers.fields.at(field), their_headers.fields.at(field)) << field;
  }
  const std::uint64_t image_base = hex_value(our_headers.fields.at("ImageBase"));
  EXPECT_EQ(hex_value(our_headers.fields.at("SizeOfImage")), sections_end(ours) - image_base);
  EXPECT_LE(hex_value(our_headers.fields.at("SizeOfImage")),
            hex_value(their_headers.fields.at("SizeOfImage")));
  const auto characteristics = [](const PrivateHeaders& headers) {  // "Characteristics 0x26"
    const auto at = headers.text.find("Characteristics 0x");
    return at == std::string::npos ? 0 : hex_value(headers.text.substr(at + 16, 8));
  };
  EXPECT_EQ(characteristics(our_headers), characteristics(objdump_private_headers(input)));
  EXPECT_EQ(characteristics(our_headers) | 0x204, characteristics(their_headers) | 0x204);
  EXPECT_NE(characteristics(their_headers) & 0x200, 0u);
  EXPECT_EQ(hex_value(our_headers.fields.at("CheckSum")),
            xbb::test::reference_checksum(result.file));
  const auto data_directories = [](const std::string& text) {
    const auto start = text.find("The Data Directory");
    return text.substr(start, text.find("\n\n", start) - start);
  };
  EXPECT_EQ(data_directories(our_headers.text), data_directories(their_headers.text));

  // Every symbol objcopy keeps, we keep with the same section and value. What
  // objcopy deletes and we keep: its debugging symbols (.file records) and
  // those of the removed sections, which we mark IMAGE_SYM_DEBUG (sec -2).
  const auto our_symbols = objdump_symbol_lines(ours);
  std::multiset<std::string> extra = our_symbols;
  for (const std::string& symbol : objdump_symbol_lines(theirs)) {
    const auto found = extra.find(symbol);
    if (found == extra.end()) {
      ADD_FAILURE() << "objcopy keeps a symbol we lack: " << symbol;
      continue;
    }
    extra.erase(found);
  }
  for (const std::string& symbol : extra) {
    EXPECT_TRUE(symbol.rfind("(sec -2)", 0) == 0) << symbol;
  }
  return result.file;
}

TEST(PeObjcopyOracle, StripDebugXen420) {
  const TempDir dir;
  const auto ours = check_against_strip_debug(xbb::test::xen420_efi(), dir);
  EXPECT_EQ(objdump_sections(dir / "ours.efi").size(), 8u);
  EXPECT_LT(ours.size(), 3'000'000u);
  EXPECT_EQ(sections_end(dir / "ours.efi"), 0xffff82d040a00000u);
}

TEST(PeObjcopyOracle, StripDebugXen417HasNothingToStrip) {
  const TempDir dir;
  const auto ours = check_against_strip_debug(xbb::test::xen417_efi(), dir);
  EXPECT_TRUE(ours == xbb::test::read_binary(xbb::test::xen417_efi()));
}

TEST(PeObjcopyOracle, StripDebugSyntheticWithDebugSectionsInBetweenAndAtTheEnd) {
  xbb::test::SyntheticPe spec = xbb::test::xen_like();
  spec.symbol_table = true;
  spec.debug_directory = true;
  spec.sections.insert(spec.sections.begin() + 1,
                       {".debug_abbrev", pattern(0x1800, 7), 0, 0x42000040});
  spec.sections.push_back({".debug_info", pattern(0x2345, 8), 0, 0x42000040});
  spec.sections.push_back({".debug_line", pattern(0x777, 9), 0, 0x42000040});
  const TempDir dir;
  const fs::path input = dir / "input.efi";
  xbb::test::write_binary(input, xbb::test::build_pe(spec));
  check_against_strip_debug(input, dir);
  EXPECT_EQ(objdump_sections(dir / "ours.efi").size(), 5u);  // .text .buildid .data .bss .reloc
}

// Leaving out the debug sections and adding .config in one call, against
// objcopy --strip-debug followed by objcopy --add-section at the address
// after the highest section of the stripped image.
TEST(PeObjcopyOracle, StripDebugAndAddConfigXen420) {
  const TempDir dir;
  const fs::path input = xbb::test::xen420_efi();
  const fs::path stripped = dir / "stripped.efi";
  const fs::path config = dir / "config";
  const fs::path ours = dir / "ours.efi";
  const fs::path theirs = dir / "theirs.efi";
  xbb::test::write_binary(config, kConfig);
  run_checked({"objcopy", "--strip-debug", input.string(), stripped.string()});
  const std::uint64_t vma = sections_end(stripped);
  EXPECT_EQ(vma, 0xffff82d040a00000u);
  objcopy_add_config(stripped, config, vma, theirs);

  const auto result = xbb::pe::add_sections(xbb::test::read_binary(input), {{".config", kConfig}},
                                            {.drop_debug_sections = true});
  xbb::test::write_binary(ours, result.file);
  const auto our_sections = objdump_sections(ours);
  const auto their_sections = objdump_sections(theirs);
  ASSERT_EQ(our_sections.size(), 9u);
  ASSERT_EQ(our_sections.size(), their_sections.size());
  for (std::size_t i = 0; i < our_sections.size(); ++i) {
    EXPECT_EQ(our_sections[i].name, their_sections[i].name) << i;
    EXPECT_EQ(our_sections[i].size, their_sections[i].size) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].vma, their_sections[i].vma) << our_sections[i].name;
    EXPECT_EQ(our_sections[i].flags, their_sections[i].flags) << our_sections[i].name;
  }
  EXPECT_EQ(our_sections.back().name, ".config");
  EXPECT_EQ(our_sections.back().vma, vma);
  const fs::path extracted = dir / "config.bin";
  run_checked(
      {"objcopy", "-O", "binary", "--only-section=.config", ours.string(), extracted.string()});
  EXPECT_EQ(xbb::test::read_binary(extracted), kConfig);
  // Xen finds .config only if it ends within SizeOfImage (xen/common/efi/pe.c).
  const PrivateHeaders headers = objdump_private_headers(ours);
  EXPECT_EQ(hex_value(headers.fields.at("SizeOfImage")),
            sections_end(ours) - hex_value(headers.fields.at("ImageBase")));
  EXPECT_GE(hex_value(headers.fields.at("SizeOfImage")),
            vma + kConfig.size() - hex_value(headers.fields.at("ImageBase")));
  const xbb::pe::Image image = xbb::pe::parse(result.file);
  EXPECT_EQ(xbb::pe::section_contents(result.file, image, ".config"), kConfig);
}

// A key and certificate for sbsign, made with openssl in `dir`.
void make_signing_key(const TempDir& dir) {
  run_checked({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
               (dir / "key.pem").string(), "-out", (dir / "cert.pem").string(), "-subj",
               "/CN=xbb test", "-days", "1"});
}

RunResult sbverify(const TempDir& dir, const fs::path& file) {
  return xbb::test::run({"sbverify", "--cert", (dir / "cert.pem").string(), file.string()});
}

void sbsign(const TempDir& dir, const fs::path& input, const fs::path& output) {
  run_checked({"sbsign", "--key", (dir / "key.pem").string(), "--cert", (dir / "cert.pem").string(),
               "--output", output.string(), input.string()});
}

// A signed image (sbsign): the signature is dropped with a warning, the
// sections are those of the unsigned image plus .config, and the output can
// be signed again and verifies.
void check_signed(const fs::path& unsigned_input) {
  const TempDir dir;
  make_signing_key(dir);
  const fs::path signed_input = dir / "signed.efi";
  sbsign(dir, unsigned_input, signed_input);
  ASSERT_EQ(sbverify(dir, signed_input).exit_code, 0);
  const auto signed_file = xbb::test::read_binary(signed_input);
  ASSERT_TRUE(xbb::pe::parse(signed_file).is_signed());

  const auto result = xbb::pe::add_sections(signed_file, {{".config", kConfig}});
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_NE(result.warnings[0].find("Authenticode"), std::string::npos);
  const fs::path ours = dir / "ours.efi";
  xbb::test::write_binary(ours, result.file);
  EXPECT_FALSE(xbb::pe::parse(result.file).is_signed());
  EXPECT_NE(sbverify(dir, ours).exit_code, 0);
  EXPECT_NE(objdump_private_headers(ours).text.find(
                "Entry 4 0000000000000000 00000000 Security Directory"),
            std::string::npos);

  const auto from_unsigned =
      xbb::pe::add_sections(xbb::test::read_binary(unsigned_input), {{".config", kConfig}});
  const fs::path reference = dir / "from-unsigned.efi";
  xbb::test::write_binary(reference, from_unsigned.file);
  const auto our_sections = objdump_sections(ours);
  const auto reference_sections = objdump_sections(reference);
  ASSERT_EQ(our_sections.size(), reference_sections.size());
  for (std::size_t i = 0; i < our_sections.size(); ++i) {
    EXPECT_EQ(our_sections[i].name, reference_sections[i].name);
    EXPECT_EQ(our_sections[i].vma, reference_sections[i].vma);
    EXPECT_EQ(our_sections[i].size, reference_sections[i].size);
  }
  const auto our_contents = dump_sections(ours, dir, "ours");
  EXPECT_TRUE(our_contents == dump_sections(reference, dir, "reference"));

  const fs::path resigned = dir / "resigned.efi";
  sbsign(dir, ours, resigned);
  const RunResult verified = sbverify(dir, resigned);
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
}

TEST(PeObjcopyOracle, SignedSyntheticImage) {
  const TempDir dir;
  const fs::path input = dir / "input.efi";
  xbb::test::write_binary(input, xbb::test::build_pe(xbb::test::xen_like()));
  check_signed(input);
}

TEST(PeObjcopyOracle, SignedXen417) { check_signed(xbb::test::xen417_efi()); }

}  // namespace
