// libFuzzer target for the PE reader and writer. Any input may be refused with
// xbb::Error, but nothing may crash or read out of bounds (ASan, UBSan), and
// whatever add_sections produces must parse again, carry the new section and
// be a fixed point of adding the same section again.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace {

const std::vector<xbb::pe::NewSection> kAdded = {{".config", {'[', 'x', ']', '\n'}}};

void check(bool condition) {
  if (!condition) std::abort();
}

void read_everything(std::span<const std::uint8_t> file, const xbb::pe::Image& image) {
  xbb::pe::build_id(file, image);
  xbb::pe::compute_checksum(file, image);
  for (const xbb::pe::Section& section : image.sections)
    xbb::pe::section_contents(file, image, section.name);
  try {
    xbb::pe::next_section_vma(image);
  } catch (const xbb::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> file(data, size);
  try {
    read_everything(file, xbb::pe::parse(file));
    const xbb::pe::AddResult added = xbb::pe::add_sections(file, kAdded);
    const xbb::pe::Image image = xbb::pe::parse(added.file);
    read_everything(added.file, image);
    check(xbb::pe::section_contents(added.file, image, ".config") == kAdded[0].data);
    check(xbb::pe::compute_checksum(added.file, image) == image.checksum);
    check(!image.is_signed());
    check(xbb::pe::add_sections(added.file, kAdded).file == added.file);
  } catch (const xbb::Error&) {
  }
  return 0;
}
