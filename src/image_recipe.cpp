#include "xbb/image_recipe.hpp"

#include <cstdint>
#include <map>
#include <variant>

#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/esp.hpp"
#include "xbb/pe.hpp"

namespace xbb {

namespace {

std::vector<std::uint8_t> as_bytes(const std::string& text) { return {text.begin(), text.end()}; }

std::vector<std::uint8_t> section_bytes(const SectionSource& source) {
  if (const auto* text = std::get_if<std::string>(&source.content)) return as_bytes(*text);
  const bool kernel = source.name == ".kernel";
  return as_bytes(posix::read_host_file(std::get<std::filesystem::path>(source.content),
                                        kernel ? limits::kKernelBytes : limits::kInitrdBytes,
                                        kernel ? "kernel" : "initrd"));
}

std::string read_xen_efi(const std::filesystem::path& path) {
  return posix::read_host_file(path, limits::kXenImageBytes, "Xen image");
}

}  // namespace

BuiltImage build_image(const ImageRecipe& recipe, const std::string& xen_efi) {
  std::vector<pe::NewSection> sections;
  for (const SectionSource& source : recipe.sections)
    sections.push_back({source.name, section_bytes(source)});
  pe::AddResult result = pe::add_sections(pe::bytes_of(xen_efi), sections);
  std::string bytes(reinterpret_cast<const char*>(result.file.data()), result.file.size());
  return {std::move(bytes), std::move(result.warnings)};
}

BuiltImage build_image(const ImageRecipe& recipe) {
  return build_image(recipe, read_xen_efi(recipe.xen_efi));
}

ApplyReport apply_plan(Esp& esp, const Plan& plan) {
  std::map<std::filesystem::path, std::string> xen_efi_files;
  return apply_plan(esp, plan, [&xen_efi_files](const ImageRecipe& recipe) {
    auto found = xen_efi_files.find(recipe.xen_efi);
    if (found == xen_efi_files.end()) {
      found = xen_efi_files.emplace(recipe.xen_efi, read_xen_efi(recipe.xen_efi)).first;
    }
    return build_image(recipe, found->second);
  });
}

}  // namespace xbb
