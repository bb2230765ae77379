#pragma once

// The memo a run that changed nothing keeps in the record (Record::memo):
// the fingerprint of everything it read, so that the next run finding the
// same inputs says again what it said, without discovering, checking or
// planning anything. What it fingerprints: the program (its path and
// stamp) and the options; every name in
// loader/entries with its type, the text of each source entry
// (nixos-*.conf) and the stamp of each Xen entry; every file of EFI/xen but
// the record, with its stamp; the names in EFI/nixos; loader.conf; and, named
// by the memo, the stamps of the host files it read (bootspecs, xen.efi
// files), whether each kernel and initrd the entries name is a regular file,
// and each image's headers and .config, as the record's check reads them;
// and the length of the record's other lines. A run whose inputs differ in any of these reads
// everything, as without a memo.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "xbb/builder.hpp"
#include "xbb/esp.hpp"
#include "xbb/record.hpp"
#include "xbb/report.hpp"

namespace xbb {

// Whether a run may answer from the memo, and keep one: a build (not plan
// or list), neither at the debug verbosity (which tells every decision) nor
// with --rebuild, on one partition (no separate XBOOTLDR, no extra ESP), from
// the source entries, without signing or embedding kernels (helpers whose
// output no fingerprint sees).
bool memo_applies(const BuildOptions& options, const Partitions& partitions,
                  const Reporter& reporter);

// The options and what the run reads of the partition's folders (see above),
// as fingerprints: the source entries (their names, types and texts) apart
// from the rest, so that a run can tell whether they changed while it ran
// (its generations are then not the partition's). Throws Error when
// something cannot be read: the run then reads it the usual way, which says
// what is wrong when it matters.
struct Scan {
  std::string sources;
  std::string rest;
  bool operator==(const Scan&) const = default;
};
Scan scan_inputs(const Esp& boot, const Esp& loader_conf_on, const BuildOptions& options);

// What a run saw of the files a memo names: each host file's stamp (nullopt:
// not a regular file), whether each ESP file is a regular file, each image's
// stamp and .config ("" without one) when its headers read as an EFI
// application and its .config is the size recorded (else nullopt).
struct MemoSight {
  std::map<std::string, std::optional<FileStamp>> host_files;
  std::map<std::string, bool> esp_files;
};
using ImageSight = std::map<std::string, std::optional<std::pair<FileStamp, std::string>>>;

// Looks again at the files `memo` names (but its images).
MemoSight look_again(const Esp& boot, const Memo& memo);

// Looks again at the images `memo` names: looked at only once every other
// input is found the same, so that a run with something to do reads no image
// twice.
ImageSight look_at_images(const Esp& boot, const Memo& memo);

// The length of a record's text after its memo line (MemoRead::after, or
// render_record_rest of a record): what a memo's fingerprint covers of the
// record (what comes before the memo is the format and version). Its length,
// not its bytes: an unchanged run stats the record instead of reading it all
// (a record of 1,100 entries is 3 MB). An edit of those lines that keeps
// their length goes unnoticed until a run has something else to do (the
// record is the tool's own cache, and what boots is checked apart).
std::uint64_t record_rest_size(const Record& record);

// The memo of the record on `boot` (read_memo) and the length of the
// record's text after its memo line: what is read of the record is its
// first bytes, up to the end of the memo line. nullopt when there is no
// record, or no memo that reads, or a record larger than one may be; throws
// Error when it cannot be read.
struct RecordMemo {
  Memo memo;
  std::uint64_t rest_size = 0;
};
std::optional<RecordMemo> read_record_memo(const Esp& boot);

// The fingerprint of a run's inputs (Memo::inputs): the scan, the sight, and
// the length of the record's other lines (record_rest_size).
std::string memo_inputs(const Scan& scan, const MemoSight& sight, std::uint64_t record_rest_size);

// The fingerprint of what was seen of the images (Memo::images_seen).
std::string images_fingerprint(const ImageSight& images);

}  // namespace xbb
