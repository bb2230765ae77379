#include "xbb/image_recipe.hpp"

#include <variant>

#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/error.hpp"
#include "xbb/pe.hpp"

namespace xbb {
namespace {

std::uint64_t limit_of(const SectionSource& source) {
  return source.name == ".kernel" ? limits::kKernelBytes : limits::kInitrdBytes;
}

std::vector<std::uint8_t> section_bytes(const SectionSource& source) {
  if (const auto* text = std::get_if<std::string>(&source.content))
    return {text->begin(), text->end()};
  const std::string bytes = posix::read_host_file(std::get<HostFile>(source.content).path,
                                                  limit_of(source), source.name.substr(1));
  return {bytes.begin(), bytes.end()};
}

std::uint64_t section_size(const SectionSource& source) {
  if (const auto* text = std::get_if<std::string>(&source.content)) return text->size();
  const HostFile& file = std::get<HostFile>(source.content);
  return posix::host_file_stamp(file.path, limit_of(source), source.name.substr(1)).size;
}

}  // namespace

const std::string& PeImageMaker::xen_efi(const HostFile& file) {
  if (file.path != source_path_) {
    source_.clear();
    source_ = posix::read_host_file(file.path, limits::kXenImageBytes, "Xen image");
    source_path_ = file.path;
  }
  return source_;
}

std::uint64_t PeImageMaker::size(const ImageRecipe& recipe) {
  const std::string& source = xen_efi(recipe.xen_efi);
  std::vector<pe::NewSectionSize> sections;
  for (const SectionSource& section : recipe.sections)
    sections.push_back({section.name, section_size(section)});
  try {
    return pe::output_size(pe::parse(pe::bytes_of(source)), source.size(), sections,
                           {recipe.drop_debug_sections});
  } catch (const Error& e) {
    throw Error(recipe.xen_efi.path.string(), e.what());
  }
}

BuiltImage PeImageMaker::make(const ImageRecipe& recipe) {
  const std::string& source = xen_efi(recipe.xen_efi);
  std::vector<pe::NewSection> sections;
  for (const SectionSource& section : recipe.sections)
    sections.push_back({section.name, section_bytes(section)});
  try {
    pe::AddResult result =
        pe::add_sections(pe::bytes_of(source), sections, {recipe.drop_debug_sections});
    return {std::string(reinterpret_cast<const char*>(result.file.data()), result.file.size()),
            std::move(result.warnings)};
  } catch (const Error& e) {
    throw Error(recipe.xen_efi.path.string(), e.what());
  }
}

}  // namespace xbb
