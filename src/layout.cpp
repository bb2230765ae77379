#include "xbb/layout.hpp"

#include <algorithm>

#include "text.hpp"

namespace xbb::layout {

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

std::string image_path(const std::string& stem) {
  return std::string(kImageFolder) + "/" + stem + ".efi";
}

}  // namespace xbb::layout
