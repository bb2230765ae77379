#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "xbb/plan.hpp"

namespace xbb {

// The bytes of an image, made from its recipe, and what the maker had to say
// about it (e.g. a dropped Authenticode signature).
struct BuiltImage {
  std::string bytes;
  std::vector<std::string> warnings;
};

// Makes images from recipes, one at a time. apply_plan takes one as a
// parameter so that applying a plan (ordering, comparing, space checks,
// writing) does not depend on how images are made: the program uses
// PeImageMaker, tests may use any deterministic function of the recipe.
class ImageMaker {
 public:
  virtual ~ImageMaker() = default;
  // The exact size make() would give, without making the image: the free
  // space a plan needs is computed from sizes.
  virtual std::uint64_t size(const ImageRecipe& recipe) = 0;
  virtual BuiltImage make(const ImageRecipe& recipe) = 0;
};

// The program's maker: reads the recipe's xen.efi (keeping only the last one
// read, which the recipes of one run nearly always share) and the host files
// of its sections, and makes the image with pe::add_sections. Throws Error
// naming a host file that could not be read.
class PeImageMaker : public ImageMaker {
 public:
  std::uint64_t size(const ImageRecipe& recipe) override;
  BuiltImage make(const ImageRecipe& recipe) override;

 private:
  const std::string& xen_efi(const HostFile& file);

  std::filesystem::path source_path_;
  std::string source_;
};

}  // namespace xbb
