#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "xbb/byte_sink.hpp"
#include "xbb/pe.hpp"
#include "xbb/plan.hpp"

namespace xbb {

// Makes images from recipes, one at a time, into sinks, so that no image is
// ever held whole. apply_plan takes one as a parameter so that applying a plan
// (ordering, comparing, space checks, writing) does not depend on how images
// are made: the program uses PeImageMaker, tests may use any deterministic
// function of the recipe.
class ImageMaker {
 public:
  virtual ~ImageMaker() = default;
  // The exact size of the image, without making it: the free space a plan
  // needs is computed from sizes.
  virtual std::uint64_t size(const ImageRecipe& recipe) = 0;
  // Writes the image into `file` (from its start; bytes already written may be
  // written again, though rewriting nothing but a PE CheckSum field spares
  // apply_plan a read-back: see RecordHash) and returns what the maker had to say about it (e.g. a
  // dropped Authenticode signature).
  virtual std::vector<std::string> write(const ImageRecipe& recipe, FileSink& file) = 0;
  // Streams the image's bytes strictly in order into `sink` (for a digest,
  // nothing written and nothing held; or for a file whose digests are taken
  // as it is written) and returns what write() would say.
  virtual std::vector<std::string> stream(const ImageRecipe& recipe, ByteSink& sink) = 0;
  // The SHA-256 (hex) of the image the recipe makes, when known without
  // making it (see SharedDigests); nullopt otherwise.
  virtual std::optional<std::string> known_sha256(const ImageRecipe&) { return std::nullopt; }
};

// What checking the xen.efi files (the builder's check_xen_images) learnt
// that the maker can use. The SHA-256 of the copy the shared layout makes of
// a xen.efi (no section added, unsigned; see layout::may_share), computed from
// the bytes read then: the same bytes (the same size and XXH3-128, change
// detection as the record's) make the same image, whose digest is then not
// computed a second time. And the bytes of the last xen.efi checked, which
// the maker takes instead of reading the file again (one is held at a time,
// by one or the other).
class SharedDigests {
 public:
  void keep(const std::filesystem::path& xen_efi, std::string_view bytes, bool drop_debug,
            std::string sha256);
  std::optional<std::string> find(const std::filesystem::path& xen_efi, std::string_view bytes,
                                  bool drop_debug) const;
  // Keeps the bytes read of `xen_efi` (letting go of any kept before).
  void keep_bytes(const std::filesystem::path& xen_efi, std::string bytes);
  // The bytes kept, when of `xen_efi`; either way none are kept after.
  std::optional<std::string> take_bytes(const std::filesystem::path& xen_efi);

 private:
  // xen.efi path, size and XXH3-128 of its bytes, drop_debug -> SHA-256.
  std::map<std::tuple<std::string, std::size_t, std::string, bool>, std::string> digests_;
  std::optional<std::pair<std::filesystem::path, std::string>> bytes_;
};

// The program's maker, with pe::Output. It reads the recipe's xen.efi whole
// (keeping only the last one read, which the recipes of one run nearly always
// share, with the CheckSum sums of its pieces: see pe::InputSums) and streams the host files of its
// sections (.kernel, .ramdisk) in chunks of kChunkBytes, checked as read_host_file checks them: a
// regular file within its limit, which must keep the size it had when opened. write() reads each of
// them once (the CheckSum goes in last); stream() reads them twice (the CheckSum comes first and
// sums them). Throws Error naming a host file that cannot be read or changes while it is read.
class PeImageMaker : public ImageMaker {
 public:
  static constexpr std::size_t kChunkBytes = 1 << 20;

  // `shared`: the digests known before (known_sha256) and the xen.efi read
  // before, or none.
  explicit PeImageMaker(SharedDigests* shared = nullptr) : shared_(shared) {}

  std::uint64_t size(const ImageRecipe& recipe) override;
  std::vector<std::string> write(const ImageRecipe& recipe, FileSink& file) override;
  std::vector<std::string> stream(const ImageRecipe& recipe, ByteSink& sink) override;
  // The one `shared` keeps for an unsigned recipe without new sections whose
  // xen.efi reads as it did then.
  std::optional<std::string> known_sha256(const ImageRecipe& recipe) override;

 private:
  struct Source {
    std::filesystem::path path;
    std::string bytes;
    pe::Image image;
    pe::InputSums sums;  // of pieces of `bytes`, for the CheckSum of each image made
  };
  Source& xen_efi(const HostFile& file);

  SharedDigests* shared_;
  std::optional<Source> source_;
};

}  // namespace xbb
