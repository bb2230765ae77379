// libFuzzer target for the PE reader and writer. Any input may be refused with
// xbb::Error, but nothing may crash or read out of bounds (ASan, UBSan), and:
// - check_prefix() gives the message parse() gives for a defect in the headers,
//   and on images parse() accepts, the one check_efi_application() gives;
// - whatever add_sections produces (with and without leaving out the debug
//   sections) must parse again, carry the new section, have the size
//   output_size() predicts and be a fixed point of adding the same section again;
// - `inspect --json`'s document of any PE image it describes (section names
//   may hold any byte) is valid JSON.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "xbb/error.hpp"
#include "xbb/inspect.hpp"
#include "xbb/json_text.hpp"
#include "xbb/output.hpp"
#include "xbb/pe.hpp"

namespace {

const std::vector<xbb::pe::NewSection> kAdded = {{".config", {'[', 'x', ']', '\n'}}};
const std::vector<xbb::pe::NewSectionSize> kAddedSizes = {{".config", 4}};

void check(bool condition) {
  if (!condition) std::abort();
}

void read_everything(std::span<const std::uint8_t> file, const xbb::pe::Image& image) {
  xbb::pe::build_id(file, image);
  xbb::pe::compute_checksum(file, image);
  xbb::pe::subsystem_name(image.subsystem);
  for (const xbb::pe::Section& section : image.sections)
    xbb::pe::section_contents(file, image, section.name);
  try {
    xbb::pe::next_section_vma(image);
  } catch (const xbb::Error&) {
  }
}

std::string parse_error(std::span<const std::uint8_t> file) {
  try {
    xbb::pe::parse(file);
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return {};
}

std::string efi_error(const xbb::pe::Image& image) {
  try {
    xbb::pe::check_efi_application(image);
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return {};
}

std::string prefix_error(std::span<const std::uint8_t> file) {
  try {
    xbb::pe::check_prefix(file, file.size());
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return {};
}

void add_and_check(std::span<const std::uint8_t> file, const xbb::pe::Image& input,
                   const xbb::pe::AddOptions& options) {
  try {
    const xbb::pe::AddResult added = xbb::pe::add_sections(file, kAdded, options);
    check(xbb::pe::output_size(input, file.size(), kAddedSizes, options) == added.file.size());
    const xbb::pe::Image image = xbb::pe::parse(added.file);
    read_everything(added.file, image);
    check(xbb::pe::section_contents(added.file, image, ".config") == kAdded[0].data);
    check(xbb::pe::compute_checksum(added.file, image) == image.checksum);
    check(!image.is_signed());
    check(xbb::pe::add_sections(added.file, kAdded, options).file == added.file);
  } catch (const xbb::Error&) {
  }
}

// PE images only: inspect_image hands anything else to libelf and zlib,
// which this target does not fuzz.
void inspect_and_check(std::span<const std::uint8_t> file) {
  if (file.size() < 2 || file[0] != 'M' || file[1] != 'Z') return;
  try {
    const std::string text = xbb::json_text(xbb::inspect_json(xbb::inspect_image(file, "fuzz")), 2);
    check(nlohmann::ordered_json::accept(text));
  } catch (const xbb::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> file(data, size);
  // The prefix check reads the headers parse() reads first, then checks the
  // Subsystem: a header defect it finds is the one parse() reports; on an
  // image parse() accepts, it says what check_efi_application() says.
  const std::string prefix = prefix_error(file);
  const std::string whole = parse_error(file);
  check(prefix.empty() || prefix == whole ||
        prefix.find("not an EFI application") != std::string::npos);
  inspect_and_check(file);
  try {
    const xbb::pe::Image input = xbb::pe::parse(file);
    read_everything(file, input);
    check(prefix == efi_error(input));
    add_and_check(file, input, {});
    add_and_check(file, input, {.drop_debug_sections = true});
  } catch (const xbb::Error&) {
  }
  return 0;
}
