#include "pe_builder.hpp"

#include <cstring>
#include <stdexcept>

namespace xbb::test {
namespace {

std::uint64_t round_up(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

void put16(std::vector<std::uint8_t>& out, std::size_t offset, std::uint16_t value) {
  out[offset] = value & 0xff;
  out[offset + 1] = value >> 8;
}

void put32(std::vector<std::uint8_t>& out, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out[offset + i] = (value >> (8 * i)) & 0xff;
}

void put64(std::vector<std::uint8_t>& out, std::size_t offset, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out[offset + i] = (value >> (8 * i)) & 0xff;
}

std::vector<std::uint8_t> debug_section_data(const std::array<std::uint8_t, 16>& build_id) {
  // A 28-byte IMAGE_DEBUG_DIRECTORY entry, then the CodeView record
  // "RSDS" + GUID + age + empty PDB name. The entry's two data pointers are
  // filled in once the section's place is known.
  std::vector<std::uint8_t> data(28 + 4 + 16 + 4 + 1, 0);
  put32(data, 12, 2);               // Type: CODEVIEW
  put32(data, 16, 4 + 16 + 4 + 1);  // SizeOfData
  std::memcpy(data.data() + 28, "RSDS", 4);
  std::memcpy(data.data() + 32, build_id.data(), 16);
  put32(data, 48, 1);  // age
  return data;
}

}  // namespace

std::vector<std::uint8_t> pattern(std::size_t size, std::uint8_t seed) {
  std::vector<std::uint8_t> bytes(size);
  for (std::size_t i = 0; i < size; ++i)
    bytes[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 8));
  return bytes;
}

SyntheticPe xen_like() {
  SyntheticPe spec;
  spec.sections = {
      {".text", pattern(0x345, 1), 0, 0x60000020},
      {".data", pattern(0x123, 2), 0, 0xc0000040},
      {".bss", {}, 0x2000, 0xc0000080},
      {".reloc", pattern(0x30, 3), 0, 0x42000040},
  };
  return spec;
}

std::vector<std::uint8_t> build_pe(const SyntheticPe& spec) {
  std::vector<SyntheticSection> sections = spec.sections;
  std::size_t debug_index = sections.size();
  if (spec.debug_directory) {
    debug_index = sections.empty() ? 0 : 1;
    sections.insert(sections.begin() + static_cast<std::ptrdiff_t>(debug_index),
                    {".buildid", debug_section_data(spec.build_id), 0, 0x40000040});
  }
  const std::size_t count = sections.size();
  const std::uint64_t table_end = kSectionTableOffset + 40 * count;
  const std::uint64_t headers =
      spec.size_of_headers != 0 ? spec.size_of_headers : round_up(table_end, spec.file_alignment);
  if (headers < table_end) throw std::logic_error("size_of_headers smaller than the section table");

  std::vector<std::uint32_t> rvas;
  std::vector<std::uint32_t> raw_pointers;
  std::uint64_t rva = round_up(headers, spec.section_alignment);
  std::uint64_t file_end = headers;
  for (const SyntheticSection& section : sections) {
    rvas.push_back(static_cast<std::uint32_t>(rva));
    const std::uint32_t size =
        section.virtual_size != 0 ? section.virtual_size : section.data.size();
    rva = round_up(rva + size, spec.section_alignment);
    raw_pointers.push_back(section.data.empty() ? 0 : static_cast<std::uint32_t>(file_end));
    file_end += round_up(section.data.size(), spec.file_alignment);
  }
  const std::uint64_t size_of_image = rva;

  // Symbol table: one static symbol per section, named like the section.
  std::vector<std::uint8_t> strings(4, 0);
  std::vector<std::string> header_names;
  std::vector<std::uint8_t> symbols;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& name = sections[i].name;
    std::uint32_t string_offset = 0;
    if (name.size() > 8) {
      if (!spec.symbol_table)
        throw std::logic_error("long section name without a string table: " + name);
      string_offset = static_cast<std::uint32_t>(strings.size());
      strings.insert(strings.end(), name.begin(), name.end());
      strings.push_back(0);
      header_names.push_back(std::string("/").append(std::to_string(string_offset)));
    } else {
      header_names.push_back(name);
    }
    std::vector<std::uint8_t> symbol(18, 0);
    if (string_offset != 0) {
      put32(symbol, 4, string_offset);
    } else {
      std::memcpy(symbol.data(), name.data(), name.size());
    }
    put16(symbol, 12, static_cast<std::uint16_t>(i + 1));  // SectionNumber
    symbol[16] = 3;                                        // StorageClass: STATIC
    symbols.insert(symbols.end(), symbol.begin(), symbol.end());
  }
  put32(strings, 0, static_cast<std::uint32_t>(strings.size()));

  std::vector<std::uint8_t> out(file_end, 0);
  out[0] = 'M';
  out[1] = 'Z';
  put32(out, 0x3c, kPeOffset);
  std::memcpy(out.data() + kPeOffset, "PE\0\0", 4);

  std::uint32_t code = 0, initialized = 0, uninitialized = 0;
  for (const SyntheticSection& section : sections) {
    const auto raw = static_cast<std::uint32_t>(round_up(section.data.size(), spec.file_alignment));
    if (section.characteristics & 0x20) code += raw;
    // Like GNU ld: debug sections are not loaded, so they do not count.
    if ((section.characteristics & 0x40) && section.name.rfind(".debug", 0) != 0)
      initialized += raw;
    if (section.characteristics & 0x80) uninitialized += section.virtual_size;
  }

  put16(out, kCoffOffset, 0x8664);
  put16(out, kCoffOffset + 2, static_cast<std::uint16_t>(count));
  if (spec.symbol_table) {
    put32(out, kCoffOffset + 8, static_cast<std::uint32_t>(file_end));
    put32(out, kCoffOffset + 12, static_cast<std::uint32_t>(count));
  }
  put16(out, kCoffOffset + 16, 0xf0);
  put16(out, kCoffOffset + 18, 0x22);  // executable, large address aware

  const std::size_t opt = kOptionalOffset;
  put16(out, opt, spec.magic);
  out[opt + 2] = 2;
  put32(out, opt + 4, code);
  put32(out, opt + 8, initialized);
  put32(out, opt + 12, uninitialized);
  put32(out, opt + 16, rvas.empty() ? 0 : rvas[0]);
  put32(out, opt + 20, rvas.empty() ? 0 : rvas[0]);
  put64(out, opt + 24, spec.image_base);
  put32(out, opt + 32, spec.section_alignment);
  put32(out, opt + 36, spec.file_alignment);
  put16(out, opt + 40, 2);
  put16(out, opt + 48, 2);
  put32(out, opt + 56, static_cast<std::uint32_t>(size_of_image));
  put32(out, opt + 60, static_cast<std::uint32_t>(headers));
  put16(out, opt + 68, spec.subsystem);
  put32(out, opt + 108, 16);
  for (std::size_t i = 0; i < count; ++i) {
    if (sections[i].name == ".reloc") {
      put32(out, opt + 112 + 8 * 5, rvas[i]);
      put32(out, opt + 112 + 8 * 5 + 4, static_cast<std::uint32_t>(sections[i].data.size()));
    }
  }

  for (std::size_t i = 0; i < count; ++i) {
    const SyntheticSection& section = sections[i];
    const std::size_t header = kSectionTableOffset + 40 * i;
    std::memcpy(out.data() + header, header_names[i].data(), header_names[i].size());
    put32(out, header + 8, section.virtual_size != 0 ? section.virtual_size : section.data.size());
    put32(out, header + 12, rvas[i]);
    put32(out, header + 16,
          static_cast<std::uint32_t>(round_up(section.data.size(), spec.file_alignment)));
    put32(out, header + 20, raw_pointers[i]);
    put32(out, header + 36, section.characteristics);
    if (!section.data.empty())
      std::memcpy(out.data() + raw_pointers[i], section.data.data(), section.data.size());
  }

  if (spec.debug_directory) {
    const std::uint32_t entry = raw_pointers[debug_index];
    put32(out, entry + 20, rvas[debug_index] + 28);  // AddressOfRawData
    put32(out, entry + 24, entry + 28);              // PointerToRawData
    put32(out, opt + 112 + 8 * 6, rvas[debug_index]);
    put32(out, opt + 112 + 8 * 6 + 4, 28);
  }
  if (spec.symbol_table) {
    out.insert(out.end(), symbols.begin(), symbols.end());
    out.insert(out.end(), strings.begin(), strings.end());
  }
  put32(out, opt + 64, reference_checksum(out));
  return out;
}

std::vector<std::pair<std::string, std::vector<std::uint8_t>>> fuzz_seeds() {
  SyntheticPe small;
  small.file_alignment = 0x20;
  small.sections = {{".text", pattern(0x45, 1), 0, 0x60000020},
                    {".data", pattern(0x23, 2), 0, 0xc0000040},
                    {".bss", {}, 0x2000, 0xc0000080},
                    {".reloc", pattern(0x10, 3), 0, 0x42000040}};
  SyntheticPe room = small;
  room.size_of_headers = 0x400;
  SyntheticPe debug = small;
  debug.debug_directory = true;
  debug.build_id = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  SyntheticPe symbols = debug;
  symbols.symbol_table = true;
  symbols.sections.push_back({".debug_info", pattern(0x40, 4), 0, 0x42000040});
  SyntheticPe pe32 = small;
  pe32.magic = 0x10b;

  std::vector<std::uint8_t> signed_image = build_pe(small);
  const auto table = static_cast<std::uint32_t>(signed_image.size());
  const std::vector<std::uint8_t> certificate = pattern(0x20, 5);
  signed_image.insert(signed_image.end(), certificate.begin(), certificate.end());
  put32(signed_image, kOptionalOffset + 112 + 8 * 4, table);
  put32(signed_image, kOptionalOffset + 112 + 8 * 4 + 4,
        static_cast<std::uint32_t>(certificate.size()));

  // An image that already carries a .config, as add_sections leaves it.
  SyntheticPe unified = symbols;
  unified.sections.push_back({".config", pattern(0x15, 6), 0, 0x40000040});

  // A section name is eight bytes, UTF-8 or not: inspect --json prints it.
  SyntheticPe byte_name = small;
  byte_name.sections[1].name = ".d\xff\xe9ta";

  return {{"small.efi", build_pe(small)},
          {"header-room.efi", build_pe(room)},
          {"debug-directory.efi", build_pe(debug)},
          {"symbols-long-names.efi", build_pe(symbols)},
          {"pe32.efi", build_pe(pe32)},
          {"signed.efi", signed_image},
          {"unified.efi", build_pe(unified)},
          {"byte-section-name.efi", build_pe(byte_name)}};
}

std::uint32_t reference_checksum(std::span<const std::uint8_t> file) {
  const std::size_t pe =
      file[0x3c] | file[0x3d] << 8 | file[0x3e] << 16 | static_cast<std::size_t>(file[0x3f]) << 24;
  const std::size_t checksum_field = pe + 4 + 20 + 64;
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < file.size(); i += 2) {
    if (i >= checksum_field && i < checksum_field + 4) continue;
    const std::uint64_t low = file[i];
    const std::uint64_t high = i + 1 < file.size() ? file[i + 1] : 0;
    sum += low | high << 8;
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint32_t>(sum + file.size());
}

}  // namespace xbb::test
