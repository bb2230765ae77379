#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

// Builds small synthetic PE32+ images for the tests, written from the PE/COFF
// specification independently of src/pe.cpp.
namespace xbb::test {

struct SyntheticSection {
  std::string name;                // longer than 8 characters needs `symbol_table`
  std::vector<std::uint8_t> data;  // file contents; empty for uninitialised data
  std::uint32_t virtual_size = 0;  // 0: data.size()
  std::uint32_t characteristics = 0x40000040;
};

struct SyntheticPe {
  std::uint16_t magic = 0x20b;  // 0x10b makes a (refused) PE32 image
  std::uint64_t image_base = 0x140000000;
  std::uint32_t section_alignment = 0x1000;
  std::uint32_t file_alignment = 0x200;
  std::uint16_t subsystem = 10;  // EFI application
  // 0: just enough for the section table, rounded up to FileAlignment.
  std::uint32_t size_of_headers = 0;
  // Inserts a `.buildid` section after the first one, holding a debug
  // directory whose CodeView (RSDS) record carries `build_id`.
  bool debug_directory = false;
  std::array<std::uint8_t, 16> build_id{};
  // Appends a COFF symbol table (one symbol per section) and a string table
  // that also holds the long section names.
  bool symbol_table = false;
  std::vector<SyntheticSection> sections;
};

std::vector<std::uint8_t> build_pe(const SyntheticPe& spec);

// `size` bytes of a recognisable pattern.
std::vector<std::uint8_t> pattern(std::size_t size, std::uint8_t seed);

// A small image like xen.efi: .text, .data, .bss, .reloc (discardable).
SyntheticPe xen_like();

// The seed corpus of the pe_fuzz target (fixtures/corpus/pe_fuzz/<name>):
// small images covering each path of the reader and of add_sections.
std::vector<std::pair<std::string, std::vector<std::uint8_t>>> fuzz_seeds();

// The PE checksum, computed here without src/pe.cpp: 16-bit words summed
// into 64 bits (the CheckSum field skipped), carries folded at the end, plus
// the file length.
std::uint32_t reference_checksum(std::span<const std::uint8_t> file);

// Offsets in every image build_pe makes.
inline constexpr std::size_t kPeOffset = 0x80;
inline constexpr std::size_t kCoffOffset = kPeOffset + 4;
inline constexpr std::size_t kOptionalOffset = kCoffOffset + 20;
inline constexpr std::size_t kSectionTableOffset = kOptionalOffset + 0xf0;

}  // namespace xbb::test
