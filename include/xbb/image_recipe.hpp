#pragma once

#include <functional>
#include <string>
#include <vector>

#include "xbb/plan.hpp"

namespace xbb {

// The bytes of a unified image, made from its recipe, and what the maker had
// to say about it (e.g. a dropped Authenticode signature).
struct BuiltImage {
  std::string bytes;
  std::vector<std::string> warnings;
};

// Turns a recipe into image bytes. apply_plan takes one as a parameter so that
// applying a plan (ordering, comparing, space checks, writing) does not depend
// on how images are made: the program uses build_image, tests may use any
// deterministic function of the recipe.
using ImageBuilder = std::function<BuiltImage(const ImageRecipe&)>;

// The program's builder: reads the host's xen.efi and every section source
// named by a path, and adds the sections with pe::add_sections. Throws Error
// naming the host file that could not be read.
BuiltImage build_image(const ImageRecipe& recipe);

// The same, with the bytes of recipe.xen_efi already read (one read per
// distinct xen.efi in a run, however many generations share it).
BuiltImage build_image(const ImageRecipe& recipe, const std::string& xen_efi);

}  // namespace xbb
