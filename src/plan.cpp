#include "xbb/plan.hpp"

#include "xbb/digest.hpp"

namespace xbb {
namespace {

// Each field with its length first, so that no two recipes read the same.
void add(Sha256& hash, std::string_view field) {
  hash.update(std::to_string(field.size())).update(":").update(field);
}

void add(Sha256& hash, const HostFile& file) {
  if (!file.digest.empty()) {
    add(hash, "content");
    add(hash, file.digest);
    return;
  }
  add(hash, file.path);
  add(hash, std::to_string(file.stamp.size));
  add(hash, std::to_string(file.stamp.mtime_ns));
}

}  // namespace

std::string recipe_id(const ImageRecipe& recipe) {
  Sha256 hash;
  add(hash, "xen.efi");
  add(hash, recipe.xen_efi);
  add(hash, recipe.drop_debug_sections ? "drop-debug" : "keep-debug");
  add(hash, "signer");
  add(hash, recipe.signer);
  for (const SectionSource& section : recipe.sections) {
    add(hash, section.name);
    if (const auto* text = std::get_if<std::string>(&section.content)) {
      add(hash, "text");
      add(hash, *text);
    } else {
      add(hash, "file");
      add(hash, std::get<HostFile>(section.content));
    }
  }
  return hash.hex();
}

}  // namespace xbb
