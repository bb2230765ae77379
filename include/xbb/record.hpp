#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xbb/byte_sink.hpp"
#include "xbb/digest.hpp"
#include "xbb/generation.hpp"
#include "xbb/plan.hpp"

// The record a run keeps on the ESP (layout::kStateFile) of the images,
// entries and configuration files it wrote, of the xen.efi files it checked
// and of the bootspecs it read, so that a run with nothing to change reads
// none of them: it reads the source entries and the record, and stats the
// rest. It is a cache, never the truth: a run that finds it
// missing, damaged or written by another version reads what it needs
// instead, and an image is trusted only while its stamp (size and mtime) is
// the one recorded and its headers and .config still read as recorded (see
// vouched_image), an entry or configuration file while its stamp is the one
// recorded (see vouched_text), a bootspec while its file's is. It never makes a file the tool's:
// ownership comes from the file's own bytes or name. `verify` never uses it.
namespace xbb {

// A run that found nothing to change, as the record keeps it: the
// fingerprint of everything it read (see memo.hpp) and what it said, so that
// the next run finding the same inputs says it again without discovering,
// checking or planning anything.
struct Memo {
  std::string inputs;       // the fingerprint of its inputs but images, 32 hex digits
  std::string images_seen;  // and of what it saw of its images
  // What it looked at beyond the folders it lists, to be looked at again:
  std::vector<std::string> host_files;          // bootspecs, xen.efi files (host paths)
  std::vector<std::string> esp_files;           // the kernels and initrds the entries name
  std::map<std::string, std::uint64_t> images;  // image vouched for -> its .config's size
  // What it said.
  std::size_t entries = 0;  // generations with a Xen entry
  std::size_t built = 0;    // generations whose Xen entry is planned (not kept for a skipped one)
  std::vector<std::string> warnings;
  std::optional<std::string> default_failure;
  bool operator==(const Memo&) const = default;
};

struct Record {
  struct Image {
    FileStamp stamp;
    std::string digest;  // the record hash of its bytes (RecordHash), hex
    std::string recipe;  // recipe_id() of what it was made from
    std::string config;  // its embedded .config ("" for a shared image)
    // SHA-256 of its bytes, for a shared image (its name holds a prefix of
    // it: layout::shared_image_digest); empty for any other.
    std::string sha256;
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
  // An entry or configuration file the tool wrote, with its text.
  struct Text {
    FileStamp stamp;
    std::string text;
    bool operator==(const Text&) const = default;
  };
  std::map<std::string, Image> images;    // by ESP path
  std::map<std::string, Source> sources;  // xen.efi files checked, by host path
  std::map<std::string, Text> texts;      // by ESP path
  // The bootspecs read (or reused) for the source entries, and the --root
  // their host paths were resolved under: used only by a run with that root.
  std::string root;
  KnownBootspecs bootspecs;
  std::optional<Memo> memo;

  bool operator==(const Record&) const = default;
};

// The record format's version: a record of another version is not read.
// 2: image digests are record hashes (XXH3-128), no longer SHA-256.
// 3: entries and configuration files, bootspecs and the memo are recorded.
inline constexpr int kRecordVersion = 3;

// The record hash of an image's bytes, the one definition the writer (which
// hashes an image as it streams it, then patches its CheckSum) and the reader
// (which hashes an image read whole) share: XXH3-128 (Xxh3) of the bytes with
// the PE CheckSum field read as four zero bytes, followed by that field's
// four bytes as they are. The field is the 4 bytes at e_lfanew + 88 (the
// u32 at offset 60) of a file that starts with "MZ" and holds them whole;
// a file without one is hashed as it is. Equal hashes mean equal bytes
// (change detection: nothing here is a proof).
//
// As a FileSink: bytes come in order, in pieces of any size, and the
// CheckSum field (only it) may be written again once streamed, as
// pe::Output::write does last.
class RecordHash : public FileSink {
 public:
  void write(std::span<const std::uint8_t> bytes) override;
  // Throws Error unless rewritable(offset, bytes.size()).
  void write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) override;
  // Whether [offset, offset + size) lies within the CheckSum field, streamed
  // whole: the only bytes the hash can take again.
  bool rewritable(std::uint64_t offset, std::size_t size) const;
  // The hash as 32 lowercase hex digits; the object is then spent.
  std::string hex();
  std::uint64_t size() const { return size_; }

 private:
  static constexpr std::size_t kHeadBytes = 64;  // the DOS header, which gives e_lfanew
  Xxh3 hash_;
  std::uint64_t size_ = 0;
  std::array<std::uint8_t, kHeadBytes> head_{};
  std::optional<std::uint64_t> field_;  // the CheckSum field's offset, once known
  std::array<std::uint8_t, 4> checksum_{};
};

// The record hash of `bytes`, read whole.
std::string record_hash(std::string_view bytes);

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

// JSON: format, version, the memo on a line of its own (null without one),
// then images, sources, texts, root and bootspecs, one line each in path
// order. The same record gives the same text. Streamed to `out` a piece at
// a time (a record of a thousand entries is megabytes), or made whole.
using RecordOut = std::function<void(std::string_view piece)>;
void render_record(const Record& record, const RecordOut& out);
std::string render_record(const Record& record);

// What follows the memo line (MemoRead::after), streamed.
void render_record_rest(const Record& record, const RecordOut& out);

// The memo of a record's text, read from its own line without reading the
// rest, and the text after that line (what the memo's fingerprint covers of
// the record: before it come only the format and version; a view into
// `text`). No memo when the text does not start as render_record writes it
// or the line does not read.
struct MemoRead {
  std::optional<Memo> memo;
  std::string_view after;
};
MemoRead read_memo(std::string_view text);

// Whether `head`, the start of a record's text, holds what read_memo needs:
// the whole memo line, or enough to tell that the text has none.
bool holds_memo_line(std::string_view head);

// The record's rules, as pure decisions over what a run read (the reading
// stays with its callers: read_esp_state for images, the builder for xen.efi).

// What a run read of an image on the ESP to check it against the record: one
// open, its headers and, when it has one, its .config; never its body.
struct ImageRead {
  FileStamp stamp;               // when it was opened
  bool efi_application = false;  // its headers and section table read as an EFI application
  bool has_config = false;       // it has a .config section
  // That section's bytes, read only when it is the recorded .config's size
  // (one of another size is not the recorded one).
  std::optional<std::string> config;
};

// The record's entry for the image at `path` when its stamp (as listed) is
// the recorded one: the image is then worth checking against it. nullopt
// otherwise, and without a record.
std::optional<Record::Image> recorded_image(const std::optional<Record>& record,
                                            const std::string& path, const FileStamp& stamp);

// What the record vouches for an image named `name` (its file name), given
// what a run read of it: the recorded .config, digest and recipe, when its
// stamp is still the recorded one, its headers read as an EFI application
// and its .config is the recorded one byte for byte (none for a shared
// image); nullopt otherwise (the image is then read whole). The record never
// makes a file the tool's: it is ours only when the recorded .config (now
// checked to be its own) carries the marker, or its name is a shared image's
// holding the recorded SHA-256.
std::optional<ExistingFile> vouched_image(const Record::Image& recorded, std::string_view name,
                                          const ImageRead& read);

// What the record vouches for the entry or configuration file at `path`,
// found with `stamp` (one stat, no read): its recorded text, when the stamp is
// the recorded one; the tool's when that text carries the marker. nullopt
// otherwise (the file is then read), and without a record.
std::optional<ExistingFile> vouched_text(const std::optional<Record>& record,
                                         const std::string& path, const FileStamp& stamp);

// The recorded check of the xen.efi at `path` (its host path), when a run may
// reuse it instead of reading the file: its stamp is the recorded one and,
// when the shared layout may be used (`may_share`), the recorded shared
// digest was computed, leaving out the debug sections exactly when this run
// does (`drop_debug`). nullopt otherwise, and without a record.
std::optional<Record::Source> reused_source(const std::optional<Record>& record,
                                            const std::string& path, const FileStamp& stamp,
                                            bool may_share, bool drop_debug);

}  // namespace xbb
