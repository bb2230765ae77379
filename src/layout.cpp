#include "xbb/layout.hpp"

#include <algorithm>

#include "text.hpp"
#include "xbb/error.hpp"
#include "xbb/xen_config.hpp"

namespace xbb::layout {
namespace {

std::string folder_of(const std::string& path) { return path.substr(0, path.rfind('/') + 1); }

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

std::optional<Kind> parse_kind(std::string_view name) {
  for (Kind kind : {Kind::unified, Kind::shared, Kind::self_contained}) {
    if (name == kind_name(kind)) return kind;
  }
  return std::nullopt;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::shared:
      return "shared";
    case Kind::self_contained:
      return "self-contained";
    case Kind::unified:
      break;
  }
  return "unified";
}

const Policy& policy(Kind kind) {
  static const Policy unified{Kind::unified, true, false, true, false};
  static const Policy shared{Kind::shared, false, false, false, true};
  static const Policy self_contained{Kind::self_contained, true, true, true, false};
  switch (kind) {
    case Kind::shared:
      return shared;
    case Kind::self_contained:
      return self_contained;
    case Kind::unified:
      break;
  }
  return unified;
}

Choice choose(const Request& request, bool xen_has_config) {
  if (request.kind) return {*request.kind, "--layout " + std::string(kind_name(*request.kind))};
  if (request.signing) return {Kind::self_contained, "signed images carry what they boot"};
  if (request.profiles) {
    return {Kind::self_contained, "generations from the profiles have no kernel on the ESP"};
  }
  if (xen_has_config) return {Kind::unified, "its xen.efi carries a .config of its own"};
  return {Kind::shared, "one image per Xen build"};
}

// Only a xen.efi without .config can be shared, and whether the kernel is
// embedded never depends on xen.efi.
bool may_share(const Request& request) { return policy(choose(request, false).kind).shares_image; }

bool embeds_kernel(const Request& request) {
  return policy(choose(request, false).kind).embeds_kernel;
}

bool is_marked(std::string_view text) {
  return text.starts_with(kMarker) && text.size() > kMarker.size() &&
         (text[kMarker.size()] == '\n' || text.substr(kMarker.size()).starts_with("\r\n"));
}

std::optional<std::string> xen_stem(std::string_view rest, std::string& why) {
  if (rest.empty()) {
    why = "the source entry's name has nothing after \"nixos-\"";
    return std::nullopt;
  }
  if (rest.size() > kMaxRestLength) {
    why = "the name after \"nixos-\" is " + std::to_string(rest.size()) +
          " characters long; the Xen entry's file names would exceed 255 bytes past " +
          std::to_string(kMaxRestLength);
    return std::nullopt;
  }
  if (!std::all_of(rest.begin(), rest.end(), text::is_file_name_character)) {
    why = "the name has characters outside [A-Za-z0-9+_.-]";
    return std::nullopt;
  }
  return "xen-" + std::string(rest);
}

std::string entry_path(const std::string& stem, const std::optional<BootCounter>& counter) {
  EntryName name{stem, std::nullopt};
  if (counter) name.counter = BootCounter{counter->total(), std::nullopt, 0, 0};
  return std::string(kEntriesFolder) + "/" + name.filename();
}

EntryFiles entry_files(Kind kind, const std::string& stem, const std::string& version,
                       const std::string& shared_digest) {
  const std::string folder = std::string(kImageFolder) + "/";
  if (!policy(kind).shares_image) return {folder + stem + ".efi", std::nullopt, std::nullopt};
  const bool named_version =
      !version.empty() && version.size() <= 64 &&
      std::all_of(version.begin(), version.end(), text::is_file_name_character);
  const std::string image = "xen-" + (named_version ? version + "-" : "") +
                            shared_digest.substr(0, kDigestLength) + ".efi";
  const std::string config = stem + ".cfg";
  return {folder + image, folder + config, image + " -cfg=" + config};
}

std::optional<std::string> shared_image_digest(std::string_view name) {
  if (!name.starts_with("xen-") || !name.ends_with(".efi")) return std::nullopt;
  std::string_view base = name.substr(0, name.size() - 4);
  if (base.size() < 4 + kDigestLength) return std::nullopt;
  std::string_view digest = base.substr(base.size() - kDigestLength);
  if (!std::all_of(digest.begin(), digest.end(), is_lower_hex)) return std::nullopt;
  if (base.size() > 4 + kDigestLength && base[base.size() - kDigestLength - 1] != '-')
    return std::nullopt;
  return std::string(digest);
}

ConfigLookup config_lookup(const std::string& image_path,
                           const std::optional<std::string>& options) {
  const std::string folder = folder_of(image_path);
  ConfigLookup lookup;
  if (options) {
    std::vector<std::string_view> words;
    std::string_view rest = *options;
    while (!rest.empty()) {
      auto [word, after] = text::split_first_word(rest);
      if (word.empty()) break;
      words.push_back(word);
      rest = after;
    }
    // The first word is the image name; "--" ends the loader's own options.
    for (std::size_t i = 1; i < words.size() && words[i] != "--"; ++i) {
      std::string_view word = words[i];
      if (word.empty() || (word.front() != '-' && word.front() != '/')) continue;
      std::string_view option = word.substr(1);
      std::optional<std::string_view> name;
      if (option.starts_with("cfg=")) name = option.substr(4);
      if (option == "cfg" && i + 1 < words.size()) name = words[++i];
      if (!name) continue;
      try {
        lookup.file = esp_path_of_xen_file(std::string(*name), folder);
      } catch (const Error&) {
        lookup.file = std::string(*name);  // names no file on the ESP: never found
      }
    }
  }
  if (lookup.file) return lookup;
  std::string name = image_path;
  for (;;) {
    const std::size_t tail = name.find_last_of(".-_");
    if (tail == std::string::npos) break;
    name.resize(tail);
    lookup.candidates.push_back(name + ".cfg");
  }
  return lookup;
}

std::vector<std::string> files_of(const LoaderEntry& entry) {
  std::vector<std::string> files;
  if (!entry.efi || entry.efi->size() < 2 || entry.efi->front() != '/') return files;
  files.push_back(entry.efi->substr(1));
  if (auto config = config_lookup(files.front(), entry.options).file) files.push_back(*config);
  return files;
}

}  // namespace xbb::layout
