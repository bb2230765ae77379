#pragma once

#include <cstdint>
#include <limits>
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
// the one recorded and its headers and .config still read as recorded (see
// read_esp_state). It never makes a file the tool's: ownership comes from
// the file's own bytes or name. `verify` never uses it.
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

  bool operator==(const Record&) const = default;
};

// The record format's version: a record of another version is not read.
inline constexpr int kRecordVersion = 1;

// No Xen image is smaller than this (Debian's 4.17 is 2.8 MB without its
// debug sections).
inline constexpr std::uint64_t kSmallestImageBytes = 1 << 20;

// The most images a sane record lists on an ESP of `esp_bytes` bytes: four
// times as many as it can hold at kSmallestImageBytes each (at least 4);
// no bound when the size is unknown (nullopt).
std::size_t max_record_images(std::optional<std::uint64_t> esp_bytes);

// nullopt when the text is not a record of this version, or is damaged in any
// way (the run then trusts nothing it would have said). Throws Error saying
// so when it lists more than `max_images` images: no run wrote it. Reads in
// O(n log n) for n entries.
std::optional<Record> parse_record(
    std::string_view text, std::size_t max_images = std::numeric_limits<std::size_t>::max());

// JSON: format, version, then images and sources, one line each in path
// order. The same record gives the same text.
std::string render_record(const Record& record);

}  // namespace xbb
