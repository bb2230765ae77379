#include "xbb/image_recipe.hpp"

#include <cstdint>
#include <variant>

#include "posix_io.hpp"
#include "xbb/esp.hpp"
#include "xbb/pe.hpp"

namespace xbb {

namespace {

std::vector<std::uint8_t> as_bytes(const std::string& text) { return {text.begin(), text.end()}; }

std::vector<std::uint8_t> section_bytes(const SectionSource& source) {
  if (const auto* text = std::get_if<std::string>(&source.content)) return as_bytes(*text);
  return as_bytes(posix::read_host_file(std::get<std::filesystem::path>(source.content)));
}

}  // namespace

BuiltImage build_image(const ImageRecipe& recipe) {
  const std::vector<std::uint8_t> xen = as_bytes(posix::read_host_file(recipe.xen_efi));
  std::vector<pe::NewSection> sections;
  for (const SectionSource& source : recipe.sections) sections.push_back({source.name, section_bytes(source)});
  pe::AddResult result = pe::add_sections(xen, sections);
  return {std::string(result.file.begin(), result.file.end()), std::move(result.warnings)};
}

ApplyReport apply_plan(Esp& esp, const Plan& plan) { return apply_plan(esp, plan, build_image); }

}  // namespace xbb
