#include "xbb/inspect.hpp"

#include <elf.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "hex.hpp"
#include "xbb/elf_image.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace xbb {
namespace {

// One formatted line ending in a newline, without trailing blanks.
std::string printf_line(const char* format, auto... values) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, values...);
  std::string line = buffer;
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line + "\n";
}

std::string field(const std::string& name, const std::string& value) {
  return printf_line("%-20s %s\n", (name + ":").c_str(), value.c_str());
}

std::string elf_section_type(std::uint32_t type) {
  switch (type) {
    case SHT_PROGBITS:
      return "PROGBITS";
    case SHT_SYMTAB:
      return "SYMTAB";
    case SHT_STRTAB:
      return "STRTAB";
    case SHT_RELA:
      return "RELA";
    case SHT_DYNAMIC:
      return "DYNAMIC";
    case SHT_NOTE:
      return "NOTE";
    case SHT_NOBITS:
      return "NOBITS";
    case SHT_REL:
      return "REL";
    case SHT_DYNSYM:
      return "DYNSYM";
    default:
      return hex(type);
  }
}

// readelf's letters for the common flags: W(rite), A(lloc), X (execute).
// A table cell: "-" when empty, so that every row has a word per column.
std::string or_dash(std::string cell) { return cell.empty() ? "-" : cell; }

std::string elf_section_flags(std::uint64_t flags) {
  std::string letters;
  if (flags & SHF_WRITE) letters += 'W';
  if (flags & SHF_ALLOC) letters += 'A';
  if (flags & SHF_EXECINSTR) letters += 'X';
  return letters;
}

std::string pe_machine(std::uint16_t machine) {
  switch (machine) {
    case pe::kMachineAmd64:
      return "x86-64";
    case pe::kMachineArm64:
      return "arm64";
    case pe::kMachineI386:
      return "i386";
    default:
      return "unknown";
  }
}

std::string elf_machine(std::uint16_t machine) {
  switch (machine) {
    case EM_X86_64:
      return "x86-64";
    case EM_386:
      return "i386";
    case EM_AARCH64:
      return "arm64";
    default:
      return "unknown";
  }
}

nlohmann::json pe_flag_names(std::uint32_t characteristics) {
  static const std::pair<std::uint32_t, const char*> kNames[] = {
      {pe::kScnCntCode, "code"},
      {pe::kScnCntInitializedData, "initialized-data"},
      {pe::kScnCntUninitializedData, "uninitialized-data"},
      {pe::kScnMemDiscardable, "discardable"},
      {pe::kScnMemExecute, "execute"},
      {pe::kScnMemRead, "read"},
      {pe::kScnMemWrite, "write"},
  };
  nlohmann::json names = nlohmann::json::array();
  for (const auto& [bit, name] : kNames) {
    if (characteristics & bit) names.push_back(name);
  }
  return names;
}

std::string joined(const nlohmann::json& names) {
  std::string text;
  for (const auto& name : names) {
    if (!text.empty()) text += ',';
    text += name.get<std::string>();
  }
  return text;
}

// The embedded configuration as text: up to the first NUL, with bytes that are
// not printable ASCII, tab, CR or newline replaced by '?'.
std::string config_text(const std::vector<std::uint8_t>& bytes) {
  std::string text;
  for (std::uint8_t byte : bytes) {
    if (byte == 0) break;
    const bool plain =
        (byte >= 0x20 && byte < 0x7f) || byte == '\n' || byte == '\t' || byte == '\r';
    text += plain ? static_cast<char>(byte) : '?';
  }
  return text;
}

InspectReport inspect_pe(std::span<const std::uint8_t> file, const std::string& path) {
  pe::Image image;
  try {
    image = pe::parse(file);
  } catch (const Error& e) {
    throw e.within(path);
  }
  const std::string build_id = pe::build_id(file, image);
  const std::uint32_t computed_checksum = pe::compute_checksum(file, image);

  nlohmann::json json = {
      {"path", path},
      {"format", "PE32+"},
      {"machine", pe_machine(image.machine)},
      {"machine_code", image.machine},
      {"image_base", hex(image.image_base)},
      {"section_alignment", image.section_alignment},
      {"file_alignment", image.file_alignment},
      {"size_of_image", image.size_of_image},
      {"size_of_headers", image.size_of_headers},
      {"checksum", image.checksum},
      {"computed_checksum", computed_checksum},
      {"subsystem", pe::subsystem_name(image.subsystem)},
      {"subsystem_code", image.subsystem},
      {"entry_point", hex(image.image_base + image.address_of_entry_point)},
      {"signed", image.is_signed()},
      {"build_id", build_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(build_id)},
  };
  std::string text = path + "\n";
  text += field("format", "PE32+");
  text += field("machine", pe_machine(image.machine) + " (" + hex(image.machine) + ")");
  text += field("ImageBase", hex(image.image_base));
  text += field("SectionAlignment", hex(image.section_alignment));
  text += field("FileAlignment", hex(image.file_alignment));
  text += field("SizeOfImage", hex(image.size_of_image));
  text += field("SizeOfHeaders", hex(image.size_of_headers));
  text +=
      field("CheckSum", hex(image.checksum) + (computed_checksum == image.checksum
                                                   ? " (correct)"
                                                   : " (computed " + hex(computed_checksum) + ")"));
  text += field("subsystem",
                pe::subsystem_name(image.subsystem) + " (" + std::to_string(image.subsystem) + ")");
  text += field("entry point", hex(image.image_base + image.address_of_entry_point));
  text += field("signed", image.is_signed() ? "yes (Authenticode)" : "no");
  text += field("build id", build_id.empty() ? "none" : build_id);
  try {
    const std::uint64_t next = pe::next_section_vma(image);
    json["next_section_vma"] = hex(next);
    text += field("next section VMA", hex(next));
  } catch (const Error&) {
    json["next_section_vma"] = nullptr;
    text += field("next section VMA", "none (address space exhausted)");
  }

  json["sections"] = nlohmann::json::array();
  text += "sections:\n";
  // Chars: the section's Characteristics, Flags: their names.
  text += printf_line("  %3s %-20s %-18s %-10s %-10s %-10s %-10s %s\n", "Idx", "Name", "VMA",
                      "VirtSize", "RawSize", "FileOff", "Chars", "Flags");
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const pe::Section& section = image.sections[i];
    const std::uint64_t vma = image.image_base + section.virtual_address;
    const nlohmann::json flags = pe_flag_names(section.characteristics);
    json["sections"].push_back({
        {"name", section.name},
        {"vma", hex(vma)},
        {"virtual_size", section.virtual_size},
        {"raw_size", section.size_of_raw_data},
        {"file_offset", section.pointer_to_raw_data},
        {"characteristics", section.characteristics},
        {"flags", flags},
    });
    text +=
        printf_line("  %3zu %-20s %-18s %-10s %-10s %-10s %-10s %s\n", i, section.name.c_str(),
                    hex(vma).c_str(), hex(section.virtual_size).c_str(),
                    hex(section.size_of_raw_data).c_str(), hex(section.pointer_to_raw_data).c_str(),
                    hex(section.characteristics).c_str(), or_dash(joined(flags)).c_str());
  }

  const std::vector<std::uint8_t> config = pe::section_contents(file, image, ".config");
  if (config.empty()) {
    json["config"] = nullptr;
    text += "no embedded .config\n";
  } else {
    const std::string config_string = config_text(config);
    json["config"] = config_string;
    text += "embedded .config (" + std::to_string(config.size()) + " bytes):\n" + config_string;
    if (config_string.empty() || config_string.back() != '\n') text += "\n";
  }
  return {std::move(text), std::move(json)};
}

InspectReport inspect_elf(std::span<const std::uint8_t> file, const std::string& path,
                          bool gzipped) {
  elf::Image image;
  try {
    image = elf::parse(file);
  } catch (const Error& e) {
    throw e.within(path);
  }
  const std::string format = "ELF" + std::to_string(image.elf_class);
  const std::vector<elf::MultibootHeader> multiboot = elf::find_multiboot_headers(file);
  nlohmann::json multiboot_json = nlohmann::json::array();
  std::string multiboot_text;
  for (const elf::MultibootHeader& header : multiboot) {
    multiboot_json.push_back({{"version", header.version}, {"offset", header.offset}});
    multiboot_text += (multiboot_text.empty() ? "" : ", ") + std::to_string(header.version) +
                      " (header at " + hex(header.offset) + ")";
  }
  nlohmann::json json = {
      {"path", path},
      {"format", format},
      {"compression", gzipped ? nlohmann::json("gzip") : nlohmann::json(nullptr)},
      {"machine", elf_machine(image.machine)},
      {"machine_code", image.machine},
      {"entry_point", hex(image.entry)},
      {"build_id",
       image.build_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(image.build_id)},
      {"multiboot", multiboot_json},
      {"sections", nlohmann::json::array()},
  };
  std::string text = path + "\n";
  text +=
      field("format", format + (gzipped ? " (gzip-compressed)" : "") +
                          (multiboot.empty() ? ", not a multiboot image" : ", a multiboot image") +
                          ", not EFI (not usable as xen.efi)");
  text += field("multiboot", multiboot.empty() ? "none" : multiboot_text);
  text += field("machine", elf_machine(image.machine) + " (" + std::to_string(image.machine) + ")");
  text += field("entry point", hex(image.entry));
  text += field("build id", image.build_id.empty() ? "none" : image.build_id);
  text += "sections:\n";
  text += printf_line("  %3s %-20s %-10s %-18s %-10s %-10s %s\n", "Idx", "Name", "Type", "Address",
                      "Offset", "Size", "Flags");
  for (std::size_t i = 0; i < image.sections.size(); ++i) {
    const elf::Section& section = image.sections[i];
    json["sections"].push_back({
        {"name", section.name},
        {"type", elf_section_type(section.type)},
        {"address", hex(section.address)},
        {"offset", section.offset},
        {"size", section.size},
        {"flags", section.flags},
    });
    text += printf_line("  %3zu %-20s %-10s %-18s %-10s %-10s %s\n", i + 1, section.name.c_str(),
                        elf_section_type(section.type).c_str(), hex(section.address).c_str(),
                        hex(section.offset).c_str(), hex(section.size).c_str(),
                        or_dash(elf_section_flags(section.flags)).c_str());
  }
  return {std::move(text), std::move(json)};
}

}  // namespace

InspectReport inspect_image(std::span<const std::uint8_t> file, const std::string& path) {
  if (elf::is_gzip(file)) {
    std::vector<std::uint8_t> inflated;
    try {
      inflated = elf::gunzip(file);
    } catch (const Error& e) {
      throw e.within(path);
    }
    if (!elf::is_elf(inflated)) throw Error(path, "a gzip file that does not hold an ELF image");
    return inspect_elf(inflated, path, true);
  }
  if (elf::is_elf(file)) return inspect_elf(file, path, false);
  if (file.size() >= 2 && file[0] == 'M' && file[1] == 'Z') return inspect_pe(file, path);
  throw Error(path, "neither a PE32+ (EFI) nor an ELF image: no MZ or ELF signature at offset 0x0");
}

InspectReport inspect_file(const std::string& path) {
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (error) throw Error(path, "cannot open: " + error.message());
  if (!std::filesystem::is_regular_file(status))
    throw Error(path, "cannot read: not a regular file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(path, std::string("cannot open: ") + std::strerror(errno));
  std::vector<std::uint8_t> file(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(file.data()), static_cast<std::streamsize>(file.size()))) {
    throw Error(path, std::string("cannot read: ") + std::strerror(errno));
  }
  return inspect_image(file, path);
}

}  // namespace xbb
