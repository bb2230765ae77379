#pragma once

#include <sys/statvfs.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xbb/byte_sink.hpp"
#include "xbb/generation.hpp"
#include "xbb/image_recipe.hpp"
#include "xbb/layout.hpp"
#include "xbb/plan.hpp"
#include "xbb/record.hpp"
#include "xbb/unique_fd.hpp"

namespace xbb {

class Signer;

// Splits an ESP-relative path into its components, or throws Error naming the
// path: no "/" at the start or end, no empty, "." or ".." component, every
// component made of [A-Za-z0-9+_.-] and at most 255 bytes long.
std::vector<std::string> split_esp_path(const std::string& path);

// What is at an ESP path, without following a symlink there.
enum class EspFileType { absent, regular, symlink, folder, other };

// The room on the ESP's file system, as fstatvfs reports it.
struct EspSpace {
  // Bytes available to an unprivileged writer (f_bavail * f_frsize); nullopt
  // when the file system reports no size at all (f_blocks 0, as FUSE FAT32
  // mounts do), since its free count then means nothing.
  std::optional<std::uint64_t> free_bytes;
  // Its size (f_blocks * f_frsize); nullopt likewise.
  std::optional<std::uint64_t> total_bytes;
  // The allocation unit (the cluster size on FAT): f_frsize, else f_bsize,
  // else 4096 when the file system reports neither.
  std::uint64_t allocation_unit = 0;
};

// The rule above, apart from the system call, so that any values can be tried.
EspSpace space_from_statvfs(const struct statvfs& stats);

// One name in an ESP folder: its type, and for a regular file its stamp.
struct EspItem {
  std::string name;
  EspFileType type = EspFileType::absent;
  FileStamp stamp;
  bool operator==(const EspItem&) const = default;
};

// The temporary file Esp::write_atomic fills: bytes are appended, and those
// already written may be written again (write_at), never beyond them, so that
// the file has no hole.
class EspFile : public FileSink {
 public:
  void write(std::span<const std::uint8_t> bytes) override;
  void write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) override;
  // Bytes written so far.
  std::uint64_t size() const { return size_; }
  // Reads the file back from its start into `sink`, in chunks: a digest of
  // what the file holds, after any write_at, without holding it.
  void read_back(ByteSink& sink) const;
  // Lets another program read or rewrite the file through its open
  // descriptor (as /proc/self/fd/N); its size is then what the program left.
  void hand_to(const std::function<void(int fd)>& program);

 private:
  friend class Esp;
  EspFile(int fd, std::string shown) : fd_(fd), shown_(std::move(shown)) {}

  int fd_;
  std::string shown_;  // the final path, for errors
  std::uint64_t size_ = 0;
};

// The EFI System Partition: every path handed to it is relative to its root,
// checked (no "/" at the start, no "." or ".." component, every component in
// [A-Za-z0-9+_.-]) and resolved without following symlinks. Nothing outside
// the root is ever read or written. Contract for esp.cpp / apply.cpp.
//
// The root itself is opened once, in the constructor, following symlinks (it
// is usually a mount point); every later access goes through that descriptor,
// one component at a time, with O_NOFOLLOW, each folder opened once and kept. A symlink in a folder
// position is an error; a symlink at a final name is never read or written through.
class Esp {
 public:
  // Throws Error (kind esp_missing) when the root cannot be opened as a folder.
  explicit Esp(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // File contents, or nullopt when the file does not exist. Throws Error for a
  // symlink, a non-regular file, a file larger than `limit` bytes (checked
  // before reading) or an I/O error.
  // When `stamp` is given, it receives the stamp of the file read.
  std::optional<std::string> read(const std::string& path, std::uint64_t limit,
                                  FileStamp* stamp = nullptr) const;

  // The same for a small file its folder's listing gives as a regular file:
  // one open, one read (a read that returns less than asked of a regular file
  // ends it), one close. Whatever is there instead gives what it reads (a
  // FIFO nothing) or an Error; an Error also for a symlink, more than `limit`
  // bytes, or an I/O error.
  std::optional<std::string> read_listed(const std::string& path, std::uint64_t limit) const;
  // Reads pieces of a regular file, never the whole of it unless asked:
  // `reader` gets the file's stamp and a function that returns the `size`
  // bytes at `offset` (fewer at the end of the file). False when the file
  // does not exist; throws Error as read() does.
  using ReadAt = std::function<std::string(std::uint64_t offset, std::size_t size)>;
  using PieceReader = std::function<void(const FileStamp& stamp, const ReadAt& read_at)>;
  bool read_pieces(const std::string& path, const PieceReader& reader) const;

  // Everything in a folder with its type (symlinks not followed) and, with
  // Stamps::with, the stamp of each regular file (one stat each; without, the
  // listing alone, and a stat only where the file system gives no type),
  // sorted by name; empty when the folder is absent.
  enum class Stamps { with, without };
  std::vector<EspItem> list_all(const std::string& dir, Stamps stamps = Stamps::with) const;

  // Names of the regular files and symlinks in a folder, sorted (empty when
  // the folder is absent). Symlinks are listed so that the planner can see,
  // and remove or replace, a symlink planted at a name the tool owns;
  // folders and other file types are not listed.
  std::vector<std::string> list(const std::string& dir) const;

  EspFileType type(const std::string& path) const;

  // Writes to a temporary name in the same folder, flushes, renames over
  // `path`, flushes the folder. Creates missing folders. Never follows a
  // symlink: a symlink at `path` is replaced, not written through.
  // On failure the temporary is removed and `path` is as it was. Returns the
  // stamp of the file written.
  FileStamp write_atomic(const std::string& path, const std::string& bytes);

  // The same, with the contents written by `fill` into the temporary (created
  // O_EXCL | O_NOFOLLOW, its name carrying temporary_marker), so that a file
  // of any size is written without being held. When `fill` throws, the
  // temporary is removed and the error passes on.
  FileStamp write_atomic(const std::string& path, const std::function<void(EspFile& file)>& fill);

  // The same for a file made from another one by a program (a signer):
  // `fill` writes the input into a first temporary, then `make` fills the
  // second from it (EspFile::hand_to gives the program both as open files,
  // so it opens no path on the ESP). Both temporaries are removed on every
  // path; on failure `path` is as it was.
  FileStamp write_atomic_through(const std::string& path,
                                 const std::function<void(EspFile& input)>& fill,
                                 const std::function<void(EspFile& input, EspFile& output)>& make);

  // What is at an ESP path (symlinks not followed), with the stamp of a
  // regular file.
  EspItem stat(const std::string& path) const;

  // Removes the file (or symlink) and flushes its folder; a missing file is
  // not an error.
  void remove(const std::string& path);

  // The room on the file system the root is on.
  EspSpace space() const;

  // A new open file description of the root folder, for EspLock.
  UniqueFd open_root() const;

  // Temporaries are named "<final name><temporary_marker><random>".
  static constexpr const char* temporary_marker = ".xbb-tmp-";

 private:
  struct Location;
  // The descriptor of the folder made of the first `count` components (the
  // root for 0), each opened once per Esp without following a symlink and
  // kept until the Esp goes (a run opens each folder once); -1 when one does
  // not exist and `create` is false.
  int folder(const std::vector<std::string>& components, std::size_t count, bool create) const;
  Location locate(const std::string& path, bool create) const;
  // The regular file at `path` open for reading, with its shown path and
  // stamp; an empty descriptor when it does not exist.
  UniqueFd open_regular(const std::string& path, std::string& shown, FileStamp& stamp) const;

  std::filesystem::path root_;
  UniqueFd root_fd_;
  mutable std::map<std::string, UniqueFd, std::less<>> folders_;  // by ESP path, see folder()
  mutable std::unique_ptr<char[]> scratch_;  // read_listed's buffer, of scratch_size_ bytes
  mutable std::size_t scratch_size_ = 0;
};

// One run at a time per ESP: an exclusive flock() on the ESP's root folder,
// held from construction to destruction. Take it before reading the ESP state
// and keep it until the plan is applied. Locking the folder itself creates
// nothing on the ESP (so a run that changes nothing, or is refused for lack of
// space, leaves it byte for byte as it was); flock() works on folders of vfat
// and tmpfs mounted locally.
class EspLock {
 public:
  // Told once, when the lock is first found held, that the run waits.
  using WaitNotice = std::function<void(const std::string& message)>;

  // Waits up to `timeout` for another run to release the lock. When it has
  // to wait, first calls `on_wait` with "waiting for the lock on <esp> held
  // by process <pid> (<command line>)" ("held by another process" when the
  // holder is not listed in /proc/locks). At the timeout throws Error "<esp>:
  // another xen-boot-builder run holds the lock; gave up after N s", followed
  // by " (process <pid> (<command line>))" when the holder is known.
  //
  // A build takes the lock exclusive; `verify`, `plan` and `list` take it
  // shared, so that they never read an ESP half way through a build, and
  // several can read at once.
  enum class Mode { exclusive, shared };
  explicit EspLock(Esp& esp, const WaitNotice& on_wait = {},
                   std::chrono::milliseconds timeout = std::chrono::seconds(60),
                   Mode mode = Mode::exclusive);

  // Unlocks explicitly, so that the lock is released even when a forked child
  // still holds a copy of the descriptor.
  ~EspLock();

  EspLock(const EspLock&) = delete;
  EspLock& operator=(const EspLock&) = delete;

 private:
  UniqueFd fd_;
};

// The partitions one set of Xen entries goes to: the ESP, which holds
// loader.conf (systemd-boot reads it nowhere else), and the Extended Boot
// Loader partition (XBOOTLDR) when there is one, which then holds the
// source entries, the kernels they name, the Xen entries, images and
// configurations and the record (Xen reads its files from the partition it
// was started from). Without one, or with one that is the ESP's own folder,
// the ESP holds everything.
class Partitions {
 public:
  // Throws Error (kind esp_missing) when either cannot be opened.
  Partitions(const std::filesystem::path& esp,
             const std::optional<std::filesystem::path>& xbootldr = std::nullopt);

  Esp& esp() { return esp_; }
  const Esp& esp() const { return esp_; }
  // Where entries and images live: the XBOOTLDR partition, or the ESP.
  Esp& boot() { return xbootldr_ ? *xbootldr_ : esp_; }
  const Esp& boot() const { return xbootldr_ ? *xbootldr_ : esp_; }
  // The XBOOTLDR partition is not the ESP: Xen files on the ESP are stale.
  bool separate() const { return xbootldr_.has_value(); }
  // The partition that plays `role` (layout::Place says which plays which).
  Esp& on(layout::Partition role) { return role == layout::Partition::esp ? esp() : boot(); }

 private:
  Esp esp_;
  std::optional<Esp> xbootldr_;
};

// Both partitions locked (the ESP first, so that two runs never wait on each
// other), as EspLock locks one.
class PartitionLocks {
 public:
  PartitionLocks(Partitions& partitions, const EspLock::WaitNotice& on_wait, EspLock::Mode mode);

 private:
  EspLock esp_;
  std::optional<EspLock> xbootldr_;
};

// The process that holds an flock() on the file (`device`, `inode`) according
// to `proc_locks`, the text of /proc/locks (FLOCK lines give the pid and
// "major:minor:inode", the device numbers in hex); nullopt when none is
// listed with a pid visible here. Waiters ("->" lines) are not holders.
std::optional<pid_t> flock_holder(std::string_view proc_locks, dev_t device, ino_t inode);

// Reads what the planner needs to know of the ESP: the texts of
// "loader/entries/xen-*.conf", the .config of each image in "EFI/xen/" (and
// the text of each .cfg there), which of them the tool wrote, the
// "EFI/nixos/xen-*.efi" images left by the shell script, the regular files
// among the kernels and initrds the generations' source entries name, and
// "loader/loader.conf" from `loader_conf_from` (the ESP; `esp` itself unless
// that is the XBOOTLDR partition; nullptr: not read) (a loader.conf that
// cannot be read, such as a symlink or a folder, is reported in
// loader_conf_problem).
// Follows no symlink.
//
// `record` (the run's record of the images it wrote, when there is a usable
// one) spares reading image bodies: an image whose stamp is the recorded one,
// whose headers and section table parse and whose .config is the recorded
// one (a read of its headers and one of its .config) is taken to be what the
// record says. Any other image is read once, and its digest kept, so that
// applying the plan needs not read it again. An entry or configuration file
// whose stamp is the one recorded is not read: the record gives its text
// (see vouched_text).
//
// With ImageChecks::stamp_only, an image whose stamp is the recorded one is
// taken to be what the record says without reading its headers: for a
// record the run has just made of images it has just written or checked.
enum class ImageChecks { headers, stamp_only };
EspState read_esp_state(const Esp& esp, const std::vector<Generation>& generations,
                        const Esp* loader_conf_from, const std::optional<Record>& record,
                        ImageChecks checks = ImageChecks::headers);

// An image as written, for the record.
struct WrittenImage {
  FileStamp stamp;
  std::string digest;  // its record hash (RecordHash)
  std::string sha256;  // a shared image's SHA-256 (its name holds a prefix of it), else empty
};

// What a run reads of an image to check it against what the record or its
// memo says (see ImageRead): its stamp when opened and, unless that is not
// `expected`, its headers and section table, and its .config when that is
// `config_size` bytes. nullopt when a read fails.
std::optional<ImageRead> read_image_check(const Esp& esp, const std::string& path,
                                          std::uint64_t config_size,
                                          const std::optional<FileStamp>& expected = std::nullopt);

struct ApplyReport {
  std::vector<std::string> written;    // paths whose bytes changed
  std::vector<std::string> unchanged;  // images made and found equal to what they replace
  std::vector<std::string> removed;    // paths that existed and were removed
  std::vector<std::string> warnings;
  // Of each image written: what the record keeps of it.
  std::map<std::string, WrittenImage> images;
  // Of each entry and configuration file written: its stamp (for the record).
  std::map<std::string, FileStamp> texts;
};

// Applies a plan in the safe order (images and configuration files, entries,
// loader.conf, removals), one file at a time: each image is streamed into its
// temporary (ImageMaker::write), flushed and renamed into place before the
// next is made, so that no image is ever held whole. An image that replaces a
// file whose digest the plan gives is first streamed through RecordHash
// (ImageMaker::stream), and not written when the digests are equal. The digest
// in ApplyReport::images is hashed as the image is streamed into its file
// (its CheckSum written last: see RecordHash); only a shared image's SHA-256
// and a signed image's digest are read back from the file written.
// An image whose recipe names a signer is written unsigned into a first
// temporary and signed by `signer` into the second (Esp::write_atomic_through);
// its digest is that of the signed file. It is written even when the plan
// gives the digest of the file it replaces (that does not tell who signed it).
// A plan that signs with another signer, or with none given, is refused
// before anything is written.
// Before writing anything, checks that the ESP has room for the writes, from
// their sizes (ImageMaker::size); when short, throws Error (kind esp_full)
// saying how many bytes are missing and changes nothing; when the file system
// reports no size (EspSpace::free_bytes is nullopt), skips the check with a
// warning. Temporaries left by an earlier interrupted run are removed first.
// If a write fails part way (e.g. another writer filled the ESP), throws at
// once: what was written is complete and nothing that depends on the rest was
// touched.
//
// `later`: a file the caller writes after the plan (the record), at most
// `size` bytes, replacing what is at `path`: the free-space check counts it
// last (when the plan writes anything at all).
struct LaterWrite {
  std::string path;
  std::uint64_t size = 0;
};
//
// `loader_conf_on`: the ESP, when `esp` is the XBOOTLDR partition: the plan's
// loader.conf goes there (in its place in the order), its space checked there.
ApplyReport apply_plan(Esp& esp, const Plan& plan, ImageMaker& maker,
                       const Signer* signer = nullptr,
                       const std::optional<LaterWrite>& later = std::nullopt,
                       Esp* loader_conf_on = nullptr);

}  // namespace xbb
