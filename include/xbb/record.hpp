#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "xbb/plan.hpp"

// The record a run keeps on the ESP (layout::kStateFile) of the images it
// wrote and of the xen.efi files it checked, so that a run with nothing to
// change reads neither. It is a cache, never the truth: a run that finds it
// missing, damaged or written by another version reads what it needs
// instead, and an image is trusted only while its stamp (size and mtime) is
// the one recorded. `verify` never uses it.
namespace xbb {

struct Record {
  struct Image {
    FileStamp stamp;
    std::string digest;  // SHA-256 of its bytes
    std::string recipe;  // recipe_id() of what it was made from
    std::string config;  // its embedded .config ("" for a shared image)
    bool operator==(const Image&) const = default;
  };
  struct Source {
    FileStamp stamp;
    bool has_config = false;  // carries a .config section
    // SHA-256 of the copy the shared layout makes of it, and whether that
    // copy left out the debug sections; empty when not computed.
    std::string shared_digest;
    bool shared_drops_debug = true;
    bool operator==(const Source&) const = default;
  };
  std::map<std::string, Image> images;    // by ESP path
  std::map<std::string, Source> sources;  // xen.efi files checked, by host path
  // Files in the tool's folders it did not write, once warned about.
  std::vector<std::string> foreign;

  bool operator==(const Record&) const = default;
};

// The record format's version: a record of another version is not read.
inline constexpr int kRecordVersion = 1;

// nullopt when the text is not a record of this version, or is damaged in any
// way (the run then trusts nothing it would have said).
std::optional<Record> parse_record(std::string_view text);

// JSON, one line per image and per source: fields in a fixed order, images
// and sources by path, so that the same record gives the same text.
std::string render_record(const Record& record);

}  // namespace xbb
