#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

// PE32+ images (xen.efi): reading the headers and section table, and writing
// a copy with sections added. Field names follow the PE/COFF specification.
namespace xbb::pe {

// The contract the rest of the program relies on; pe.cpp owns the details.

struct Section {
  std::string name;  // long names resolved through the COFF string table
  std::uint32_t virtual_size = 0;
  std::uint32_t virtual_address = 0;  // RVA
  std::uint32_t size_of_raw_data = 0;
  std::uint32_t pointer_to_raw_data = 0;
  std::uint32_t characteristics = 0;
};

struct Image {
  std::uint16_t machine = 0;
  std::uint64_t image_base = 0;
  std::uint32_t section_alignment = 0;
  std::uint32_t file_alignment = 0;
  std::uint32_t size_of_image = 0;
  std::uint32_t size_of_headers = 0;
  std::uint32_t checksum = 0;
  std::vector<Section> sections;
};

// Parses a PE32+ image. Throws xbb::Error with what is wrong and at which
// offset for anything malformed, truncated, PE32 or not PE at all.
Image parse(std::span<const std::uint8_t> file);

struct NewSection {
  std::string name;  // e.g. ".config"; an existing section of that name is replaced
  std::vector<std::uint8_t> data;
};

struct AddResult {
  std::vector<std::uint8_t> file;
  std::vector<std::string> warnings;  // e.g. a dropped Authenticode signature
};

// A copy of `file` with `sections` added after the highest section (debug and
// discardable ones included), never below SizeOfImage, each aligned to
// SectionAlignment.
AddResult add_sections(std::span<const std::uint8_t> file, const std::vector<NewSection>& sections);

// The initialised bytes of the named section (VirtualSize bytes, capped at
// SizeOfRawData), or nullopt-like empty result when absent: see pe.cpp.
std::vector<std::uint8_t> section_contents(std::span<const std::uint8_t> file, const Image& image,
                                           const std::string& name);

}  // namespace xbb::pe
