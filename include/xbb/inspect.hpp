#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>

// `xen-boot-builder inspect FILE`: what a Xen image is and what it carries.
namespace xbb {

// The same facts twice: `text` for people (ends with a newline), `json` for
// programs. Addresses (ImageBase, VMAs, entry point) are JSON strings "0x..."
// because they do not fit in a double (jq would round them); sizes, offsets
// and flags are JSON numbers.
//
// PE32+: format, machine, ImageBase, SectionAlignment, FileAlignment,
// SizeOfImage, SizeOfHeaders, CheckSum (stored and computed), Subsystem (name
// and number), entry point,
// whether it is signed, the section table (name, VMA, virtual size, raw size,
// file offset, characteristics), the build id (CodeView record), the VMA the
// next added section would get, and the text of an embedded `.config` (up to
// its first NUL; bytes outside printable ASCII, tab and newline shown as '?').
// ELF (plain or gzip-compressed): class, machine, entry point, the Multiboot
// headers it carries (version and offset; none makes it no multiboot image),
// the section table and the GNU build id.
struct InspectReport {
  std::string text;
  nlohmann::json json;
};

// Describes the image in `file`; `path` only labels the report and errors.
// Throws xbb::Error naming `path` for anything that is neither a PE32+ nor an
// ELF image, or that is malformed.
InspectReport inspect_image(std::span<const std::uint8_t> file, const std::string& path);

// Reads `path` and describes it (see inspect_image).
InspectReport inspect_file(const std::string& path);

}  // namespace xbb
