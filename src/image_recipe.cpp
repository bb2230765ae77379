#include "xbb/image_recipe.hpp"

#include <algorithm>
#include <variant>

#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/unique_fd.hpp"

namespace xbb {
namespace {

std::uint64_t limit_of(const SectionSource& source) {
  return source.name == ".kernel" ? limits::kKernelBytes : limits::kInitrdBytes;
}

std::uint64_t section_size(const SectionSource& source) {
  if (const auto* text = std::get_if<std::string>(&source.content)) return text->size();
  const HostFile& file = std::get<HostFile>(source.content);
  return posix::host_file_stamp(file.path, limit_of(source), source.name.substr(1)).size;
}

// The contents of an image's new sections: texts of the recipe, and host
// files opened once (type, limit and size checked then) and read from their
// start in chunks each time their contents are asked for.
class SectionInputs {
 public:
  explicit SectionInputs(const ImageRecipe& recipe) {
    for (const SectionSource& source : recipe.sections) {
      Input& input = inputs_.emplace_back(Input{&source, {}, 0});
      if (const auto* text = std::get_if<std::string>(&source.content)) {
        input.size = text->size();
        continue;
      }
      FileStamp stamp;
      input.fd = posix::open_host_file(std::get<HostFile>(source.content).path, limit_of(source),
                                       source.name.substr(1), stamp);
      input.size = stamp.size;
    }
  }
  SectionInputs(const SectionInputs&) = delete;
  SectionInputs& operator=(const SectionInputs&) = delete;

  std::vector<pe::NewSectionSize> sizes() const {
    std::vector<pe::NewSectionSize> sizes;
    for (const Input& input : inputs_) sizes.push_back({input.source->name, input.size});
    return sizes;
  }

  std::vector<pe::SectionContents> contents() const {
    std::vector<pe::SectionContents> contents;
    for (const Input& input : inputs_) {
      contents.push_back(
          [&input](const pe::Deliver& deliver) { deliver_contents(input, deliver); });
    }
    return contents;
  }

 private:
  struct Input {
    const SectionSource* source;
    UniqueFd fd;  // of a host file
    std::uint64_t size;
  };

  static void deliver_contents(const Input& input, const pe::Deliver& deliver) {
    if (const auto* text = std::get_if<std::string>(&input.source->content)) {
      deliver(pe::bytes_of(*text));
      return;
    }
    const std::string shown = std::get<HostFile>(input.source->content).path;
    const std::string changed = "changed size while being read (it had " +
                                std::to_string(input.size) + " bytes when opened)";
    std::vector<std::uint8_t> buffer(
        static_cast<std::size_t>(std::min<std::uint64_t>(input.size, PeImageMaker::kChunkBytes)));
    for (std::uint64_t done = 0; done < input.size;) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), input.size - done));
      const std::size_t got =
          posix::read_at(input.fd.get(), done, std::span(buffer).first(want), shown);
      if (got == 0) throw Error(shown, changed);
      deliver(std::span(buffer).first(got));
      done += got;
    }
    std::uint8_t past_end = 0;
    if (posix::read_at(input.fd.get(), input.size, std::span(&past_end, 1), shown) != 0) {
      throw Error(shown, changed);
    }
  }

  std::vector<Input> inputs_;
};

// A signed image is made padded as the signer wants it (see Signer).
pe::AddOptions options_of(const ImageRecipe& recipe) {
  return {recipe.drop_debug_sections, !recipe.signer.empty()};
}

// The image laid out; an error in the layout is about the Xen image.
pe::Output output_of(const std::filesystem::path& xen_efi, std::span<const std::uint8_t> file,
                     const pe::Image& image, const std::vector<pe::NewSectionSize>& sections,
                     const ImageRecipe& recipe) {
  try {
    return pe::Output(file, image, sections, options_of(recipe));
  } catch (const Error& e) {
    throw e.within(xen_efi.string());
  }
}

std::string xxh3_of(std::string_view bytes) {
  return Xxh3().update({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}).hex();
}

}  // namespace

void SharedDigests::keep(const std::filesystem::path& xen_efi, std::string_view bytes,
                         bool drop_debug, std::string sha256) {
  digests_[{xen_efi.string(), bytes.size(), xxh3_of(bytes), drop_debug}] = std::move(sha256);
}

std::optional<std::string> SharedDigests::find(const std::filesystem::path& xen_efi,
                                               std::string_view bytes, bool drop_debug) const {
  auto found = digests_.find({xen_efi.string(), bytes.size(), xxh3_of(bytes), drop_debug});
  if (found == digests_.end()) return std::nullopt;
  return found->second;
}

void SharedDigests::keep_bytes(const std::filesystem::path& xen_efi, std::string bytes) {
  bytes_.reset();
  bytes_.emplace(xen_efi, std::move(bytes));
}

std::optional<std::string> SharedDigests::take_bytes(const std::filesystem::path& xen_efi) {
  std::optional<std::string> taken;
  if (bytes_ && bytes_->first == xen_efi) taken = std::move(bytes_->second);
  bytes_.reset();
  return taken;
}

PeImageMaker::Source& PeImageMaker::xen_efi(const HostFile& file) {
  if (!source_ || source_->path != file.path) {
    source_.reset();
    std::optional<std::string> kept;
    if (shared_) kept = shared_->take_bytes(file.path);
    Source source{file.path,
                  kept ? std::move(*kept)
                       : posix::read_host_file(file.path, limits::kXenImageBytes, "Xen image"),
                  {},
                  {}};
    try {
      source.image = pe::parse(pe::bytes_of(source.bytes));
    } catch (const Error& e) {
      throw e.within(file.path);
    }
    source_ = std::move(source);
  }
  return *source_;
}

std::uint64_t PeImageMaker::size(const ImageRecipe& recipe) {
  const Source& source = xen_efi(recipe.xen_efi);
  std::vector<pe::NewSectionSize> sections;
  for (const SectionSource& section : recipe.sections)
    sections.push_back({section.name, section_size(section)});
  try {
    return pe::output_size(source.image, source.bytes.size(), sections, options_of(recipe));
  } catch (const Error& e) {
    throw e.within(recipe.xen_efi.path);
  }
}

std::vector<std::string> PeImageMaker::write(const ImageRecipe& recipe, FileSink& file) {
  Source& source = xen_efi(recipe.xen_efi);
  const SectionInputs inputs(recipe);
  const pe::Output output =
      output_of(source.path, pe::bytes_of(source.bytes), source.image, inputs.sizes(), recipe);
  output.write(inputs.contents(), file, &source.sums);
  return output.warnings();
}

std::vector<std::string> PeImageMaker::stream(const ImageRecipe& recipe, ByteSink& sink) {
  Source& source = xen_efi(recipe.xen_efi);
  const SectionInputs inputs(recipe);
  const pe::Output output =
      output_of(source.path, pe::bytes_of(source.bytes), source.image, inputs.sizes(), recipe);
  output.stream(inputs.contents(), sink, &source.sums);
  return output.warnings();
}

std::optional<std::string> PeImageMaker::known_sha256(const ImageRecipe& recipe) {
  if (!shared_ || !recipe.sections.empty() || !recipe.signer.empty()) return std::nullopt;
  const Source& source = xen_efi(recipe.xen_efi);
  return shared_->find(source.path, source.bytes, recipe.drop_debug_sections);
}

}  // namespace xbb
