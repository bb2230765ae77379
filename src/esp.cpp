#include "xbb/esp.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include "posix_io.hpp"
#include "process.hpp"
#include "text.hpp"
#include "xbb/error.hpp"

namespace xbb {

namespace {

namespace fs = std::filesystem;
using posix::error_text;

constexpr std::size_t max_component_length = 255;
constexpr int folder_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// What EspFile::read_back reads at a time (held while a run holds its
// xen.efi: more would only add to its peak memory).
constexpr std::uint64_t read_chunk_bytes = 1 << 18;

// The path in double quotes, with anything unprintable as \xNN, so that the
// error message stays one readable line whatever the path holds.
std::string quoted(const std::string& path) {
  std::string out = "\"";
  for (unsigned char c : path) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out + "\"";
}

void check_component(const std::string& path, const std::string& component) {
  const auto where = [&path] { return "ESP path " + quoted(path); };
  if (component.empty())
    throw Error(where(), "empty component (leading, trailing or doubled \"/\")");
  if (component == "." || component == "..")
    throw Error(where(), "component \"" + component + "\" not allowed");
  if (component.size() > max_component_length)
    throw Error(where(), "component longer than 255 bytes");
  for (char c : component) {
    if (!text::is_file_name_character(c)) {
      throw Error(where(), "character " + quoted(std::string(1, c)) +
                               " not allowed (only A-Z a-z 0-9 + _ . -)");
    }
  }
}

// The path as the user knows it: (root / relative).string(), without
// parsing either.
std::string shown_path(const fs::path& root, const std::string& relative) {
  const std::string& base = root.native();
  if (relative.empty()) return base;
  return base + (base.ends_with('/') ? "" : "/") + relative;
}

// An Error for a failed call that writes the ESP, from errno: a full ESP is
// esp_full, wherever in a run it is found.
Error write_error(const std::string& shown, const std::string& what) {
  const int error_number = errno;
  return Error(shown, what + ": " + error_text(error_number),
               posix::kind_of(error_number, ErrorKind::esp_full));
}

void flush_folder(int folder, const std::string& shown) {
  if (::fsync(folder) != 0) throw write_error(shown, "cannot flush folder");
}

// Why `name` in `folder` could not be opened the way we wanted: symlinks get
// their own message, since refusing them is deliberate.
[[noreturn]] void throw_open_error(int folder, const std::string& name, const std::string& shown,
                                   int error_number, const std::string& expected) {
  struct stat st {};
  if (::fstatat(folder, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode))
      throw Error(shown, "is a symlink; symlinks on the ESP are not followed");
    if (error_number == ENOTDIR || error_number == ELOOP)
      throw Error(shown, "is not a " + expected);
  }
  throw Error(shown, "cannot open " + expected + ": " + error_text(error_number));
}

// Opens the folder `name` inside `parent` without following a symlink.
// Returns an empty descriptor when it does not exist and `create` is false.
UniqueFd open_folder(int parent, const std::string& name, const std::string& shown_parent,
                     const std::string& shown, bool create) {
  UniqueFd folder(::openat(parent, name.c_str(), folder_flags));
  if (folder) return folder;
  if (errno != ENOENT) throw_open_error(parent, name, shown, errno, "folder");
  if (!create) return UniqueFd();
  if (::mkdirat(parent, name.c_str(), 0755) != 0 && errno != EEXIST) {
    throw write_error(shown, "cannot create folder");
  }
  flush_folder(parent, shown_parent);
  folder = UniqueFd(::openat(parent, name.c_str(), folder_flags));
  if (!folder) throw_open_error(parent, name, shown, errno, "folder");
  return folder;
}

std::string random_suffix() {
  static std::random_device device;
  std::uint64_t value = (static_cast<std::uint64_t>(device()) << 32) | device();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(value));
  return hex;
}

EspFileType type_of(mode_t mode) {
  if (S_ISREG(mode)) return EspFileType::regular;
  if (S_ISLNK(mode)) return EspFileType::symlink;
  if (S_ISDIR(mode)) return EspFileType::folder;
  return EspFileType::other;
}

// The type a folder listing gives (d_type), or nullopt when the file system
// does not say (DT_UNKNOWN): then only a stat tells.
std::optional<EspFileType> type_of_entry(unsigned char type) {
  switch (type) {
    case DT_REG:
      return EspFileType::regular;
    case DT_LNK:
      return EspFileType::symlink;
    case DT_DIR:
      return EspFileType::folder;
    case DT_UNKNOWN:
      return std::nullopt;
    default:
      return EspFileType::other;
  }
}

struct Temporary {
  UniqueFd fd;
  std::string name;
};

Temporary create_temporary(int folder, const std::string& final_name, const std::string& shown) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string name = final_name + Esp::temporary_marker + random_suffix();
    UniqueFd fd(
        ::openat(folder, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (fd) return {std::move(fd), name};
    if (errno != EEXIST) throw write_error(shown, "cannot create temporary file");
  }
  throw Error(shown, "cannot create temporary file: every random name tried exists");
}

}  // namespace

std::vector<std::string> split_esp_path(const std::string& path) {
  if (path.empty()) throw Error("ESP path \"\"", "empty");
  if (path.front() == '/')
    throw Error("ESP path " + quoted(path), "must be relative to the ESP root");
  std::vector<std::string> components;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = path.find('/', start);
    components.push_back(
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    check_component(path, components.back());
    if (slash == std::string::npos) return components;
    start = slash + 1;
  }
}

// A resolved ESP path: its folder, opened without following symlinks (a
// descriptor the Esp keeps, see Esp::folder), and its final name. `folder` is
// -1 when a folder on the way does not exist.
struct Esp::Location {
  int folder = -1;
  std::string name;
  const fs::path* root = nullptr;
  std::string path;               // as given
  std::size_t folder_length = 0;  // of its folder's part of `path`

  // The path and its folder as the user knows them, for messages and errors.
  std::string shown() const { return shown_path(*root, path); }
  std::string shown_folder() const { return shown_path(*root, path.substr(0, folder_length)); }
};

Esp::Esp(fs::path root) : root_(std::move(root)) {
  root_fd_ = UniqueFd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd_) {
    throw Error(root_.string(), "cannot open the ESP: " + error_text(errno),
                ErrorKind::esp_missing);
  }
}

int Esp::folder(const std::vector<std::string>& components, std::size_t count, bool create) const {
  int current = root_fd_.get();
  std::string path;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string parent = path;
    path += (i > 0 ? "/" : "") + components[i];
    auto known = folders_.find(path);
    if (known == folders_.end()) {
      UniqueFd opened = open_folder(current, components[i], shown_path(root_, parent),
                                    shown_path(root_, path), create);
      if (!opened) return -1;
      known = folders_.emplace(path, std::move(opened)).first;
    }
    current = known->second.get();
  }
  return current;
}

Esp::Location Esp::locate(const std::string& path, bool create) const {
  const std::size_t slash = path.rfind('/');
  Location location{-1, "", &root_, path, slash == std::string::npos ? 0 : slash};
  // A folder opened before: its components were checked then.
  if (slash != std::string::npos && slash + 1 < path.size()) {
    auto known = folders_.find(std::string_view(path).substr(0, slash));
    if (known != folders_.end()) {
      location.name = path.substr(slash + 1);
      check_component(path, location.name);
      location.folder = known->second.get();
      return location;
    }
  }
  std::vector<std::string> components = split_esp_path(path);
  location.folder = folder(components, components.size() - 1, create);
  location.name = components.back();
  return location;
}

UniqueFd Esp::open_regular(const std::string& path, std::string& shown, FileStamp& stamp) const {
  Location at = locate(path, false);
  shown = at.shown();
  if (at.folder < 0) return UniqueFd();
  UniqueFd file(::openat(at.folder, at.name.c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!file) {
    if (errno == ENOENT) return UniqueFd();
    throw_open_error(at.folder, at.name, at.shown(), errno, "regular file");
  }
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) throw Error(at.shown(), "cannot stat: " + error_text(errno));
  if (!S_ISREG(st.st_mode))
    throw Error(at.shown(), "is " + posix::file_type_name(st.st_mode) + ", not a regular file");
  stamp = posix::stamp_of(st);
  return file;
}

std::optional<std::string> Esp::read(const std::string& path, std::uint64_t limit,
                                     FileStamp* stamp) const {
  std::string shown;
  FileStamp found;
  UniqueFd file = open_regular(path, shown, found);
  if (!file) return std::nullopt;
  if (stamp) *stamp = found;
  return posix::read_all(file.get(), shown, limit, "file there", found.size);
}

std::optional<std::string> Esp::read_listed(const std::string& path, std::uint64_t limit) const {
  Location at = locate(path, false);
  if (at.folder < 0) return std::nullopt;
  UniqueFd file(::openat(at.folder, at.name.c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!file) {
    if (errno == ENOENT) return std::nullopt;
    throw_open_error(at.folder, at.name, at.shown(), errno, "regular file");
  }
  const std::size_t room = static_cast<std::size_t>(limit) + 1;
  if (scratch_size_ < room) {
    scratch_.reset(new char[room]);  // not zeroed: only the pages read into are touched
    scratch_size_ = room;
  }
  std::size_t done = 0;
  while (done < room) {
    const std::size_t asked = room - done;
    const ssize_t n = ::read(file.get(), scratch_.get() + done, asked);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(at.shown(), "cannot read: " + error_text(errno));
    done += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < asked) break;
  }
  if (done > limit) {
    throw Error(at.shown(),
                "more than the " + std::to_string(limit) + " bytes a file there may have");
  }
  return std::string(scratch_.get(), done);
}

bool Esp::read_pieces(const std::string& path, const PieceReader& reader) const {
  std::string shown;
  FileStamp stamp;
  UniqueFd file = open_regular(path, shown, stamp);
  if (!file) return false;
  reader(stamp, [&](std::uint64_t offset, std::size_t size) {
    std::string piece(size, '\0');
    const std::size_t got = posix::read_at(
        file.get(), offset, {reinterpret_cast<std::uint8_t*>(piece.data()), size}, shown);
    piece.resize(got);
    return piece;
  });
  return true;
}

std::vector<EspItem> Esp::list_all(const std::string& dir, Stamps stamps) const {
  std::vector<std::string> components = split_esp_path(dir);
  const int parent = folder(components, components.size(), false);
  if (parent < 0) return {};
  const std::string shown = shown_path(root_, dir);
  // A descriptor of its own for the stream, which closes it.
  UniqueFd listed(::openat(parent, ".", folder_flags));
  if (!listed) throw Error(shown, "cannot list folder: " + error_text(errno));
  std::unique_ptr<DIR, int (*)(DIR*)> stream(::fdopendir(listed.get()), ::closedir);
  if (!stream) throw Error(shown, "cannot list folder: " + error_text(errno));
  listed.release();

  std::vector<EspItem> items;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(stream.get());
    if (entry == nullptr) break;
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::optional<EspFileType> listed_type = type_of_entry(entry->d_type);
    if (listed_type && (stamps == Stamps::without || *listed_type != EspFileType::regular)) {
      items.push_back({std::move(name), *listed_type, {}});
      continue;
    }
    struct stat st {};
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      throw Error(shown_path(root_, dir + "/" + name), "cannot stat: " + error_text(errno));
    }
    items.push_back({std::move(name), type_of(st.st_mode), posix::stamp_of(st)});
  }
  if (errno != 0) throw Error(shown, "cannot list folder: " + error_text(errno));
  std::sort(items.begin(), items.end(),
            [](const EspItem& a, const EspItem& b) { return a.name < b.name; });
  return items;
}

std::vector<std::string> Esp::list(const std::string& dir) const {
  std::vector<std::string> names;
  for (auto& item : list_all(dir, Stamps::without)) {
    if (item.type == EspFileType::regular || item.type == EspFileType::symlink) {
      names.push_back(std::move(item.name));
    }
  }
  return names;
}

EspItem Esp::stat(const std::string& path) const {
  Location at = locate(path, false);
  EspItem item{at.name, EspFileType::absent, {}};
  if (at.folder < 0) return item;
  struct stat st {};
  if (::fstatat(at.folder, at.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return item;
    throw Error(at.shown(), "cannot stat: " + error_text(errno));
  }
  item.type = type_of(st.st_mode);
  item.stamp = posix::stamp_of(st);
  return item;
}

EspFileType Esp::type(const std::string& path) const {
  Location at = locate(path, false);
  if (at.folder < 0) return EspFileType::absent;
  struct stat st {};
  if (::fstatat(at.folder, at.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return EspFileType::absent;
    throw Error(at.shown(), "cannot stat: " + error_text(errno));
  }
  return type_of(st.st_mode);
}

void EspFile::write(std::span<const std::uint8_t> bytes) {
  posix::write_all(fd_, bytes, shown_, ErrorKind::esp_full);
  size_ += bytes.size();
}

void EspFile::write_at(std::uint64_t offset, std::span<const std::uint8_t> bytes) {
  if (offset > size_ || bytes.size() > size_ - offset) {
    throw Error(shown_, "cannot rewrite " + std::to_string(bytes.size()) + " bytes at offset " +
                            std::to_string(offset) + ": only " + std::to_string(size_) +
                            " bytes are written");
  }
  posix::write_all_at(fd_, offset, bytes, shown_, ErrorKind::esp_full);
}

void EspFile::read_back(ByteSink& sink) const {
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(std::min(size_, read_chunk_bytes)));
  for (std::uint64_t done = 0; done < size_;) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size_ - done));
    const std::size_t got = posix::read_at(fd_, done, std::span(buffer).first(want), shown_);
    if (got == 0) {
      throw Error(shown_, "the temporary file holds " + std::to_string(done) + " bytes, " +
                              std::to_string(size_) + " were written");
    }
    sink.write(std::span(buffer).first(got));
    done += got;
  }
}

void EspFile::hand_to(const std::function<void(int fd)>& program) {
  program(fd_);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw Error(shown_, "cannot stat: " + error_text(errno));
  size_ = static_cast<std::uint64_t>(st.st_size);
}

FileStamp Esp::write_atomic(const std::string& path, const std::string& bytes) {
  return write_atomic(path, [&](EspFile& file) {
    file.write({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
  });
}

FileStamp Esp::write_atomic(const std::string& path,
                            const std::function<void(EspFile& file)>& fill) {
  Location at = locate(path, true);
  Temporary temporary = create_temporary(at.folder, at.name, at.shown());
  FileStamp stamp;
  try {
    EspFile file(temporary.fd.get(), at.shown());
    fill(file);
    if (::fsync(temporary.fd.get()) != 0) throw write_error(at.shown(), "cannot flush");
    struct stat st {};
    if (::fstat(temporary.fd.get(), &st) != 0)
      throw Error(at.shown(), "cannot stat: " + error_text(errno));
    stamp = posix::stamp_of(st);
    if (::close(temporary.fd.release()) != 0) throw write_error(at.shown(), "cannot close");
    if (::renameat(at.folder, temporary.name.c_str(), at.folder, at.name.c_str()) != 0) {
      throw write_error(at.shown(), "cannot rename " + temporary.name + " into place");
    }
  } catch (...) {
    ::unlinkat(at.folder, temporary.name.c_str(), 0);
    throw;
  }
  flush_folder(at.folder, at.shown_folder());
  return stamp;
}

FileStamp Esp::write_atomic_through(
    const std::string& path, const std::function<void(EspFile& input)>& fill,
    const std::function<void(EspFile& input, EspFile& output)>& make) {
  Location at = locate(path, true);
  Temporary input = create_temporary(at.folder, at.name, at.shown());
  FileStamp stamp;
  try {
    EspFile file(input.fd.get(), at.shown());
    fill(file);
    stamp = write_atomic(path, [&](EspFile& output) { make(file, output); });
  } catch (...) {
    ::unlinkat(at.folder, input.name.c_str(), 0);
    throw;
  }
  if (::unlinkat(at.folder, input.name.c_str(), 0) != 0) {
    throw Error(at.shown(),
                "cannot remove temporary file " + input.name + ": " + error_text(errno));
  }
  return stamp;
}

void Esp::remove(const std::string& path) {
  Location at = locate(path, false);
  if (at.folder < 0) return;
  if (::unlinkat(at.folder, at.name.c_str(), 0) != 0) {
    if (errno == ENOENT) return;
    throw Error(at.shown(), "cannot remove: " + error_text(errno));
  }
  flush_folder(at.folder, at.shown_folder());
}

EspSpace space_from_statvfs(const struct statvfs& stats) {
  constexpr std::uint64_t unit_when_unreported = 4096;
  EspSpace space;
  space.allocation_unit = stats.f_frsize != 0  ? stats.f_frsize
                          : stats.f_bsize != 0 ? stats.f_bsize
                                               : unit_when_unreported;
  if (stats.f_blocks != 0) {
    space.free_bytes = static_cast<std::uint64_t>(stats.f_bavail) * space.allocation_unit;
    space.total_bytes = static_cast<std::uint64_t>(stats.f_blocks) * space.allocation_unit;
  }
  return space;
}

EspSpace Esp::space() const {
  struct statvfs stats {};
  if (::fstatvfs(root_fd_.get(), &stats) != 0) {
    throw Error(root_.string(), "cannot read file system statistics: " + error_text(errno));
  }
  return space_from_statvfs(stats);
}

UniqueFd Esp::open_root() const {
  UniqueFd folder(::openat(root_fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!folder) throw Error(root_.string(), "cannot open: " + error_text(errno));
  return folder;
}

namespace {

std::string describe(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + " s";
  return std::to_string(duration.count()) + " ms";
}

// A file of /proc (its size says nothing: it is read to the end, up to a
// mebibyte), or nullopt when it cannot be read.
std::optional<std::string> proc_file(const std::string& path) {
  try {
    return posix::read_host_file(path, 1 << 20, "file of /proc");
  } catch (const Error&) {
    return std::nullopt;
  }
}

// A process's command line (its arguments joined by spaces), or its command
// name when that is empty, made one printable line of at most 200 bytes.
std::string command_of(pid_t pid) {
  constexpr std::size_t longest = 200;
  const std::string folder = "/proc/" + std::to_string(pid) + "/";
  std::string command = proc_file(folder + "cmdline").value_or("");
  while (!command.empty() && command.back() == '\0') command.pop_back();
  if (command.empty()) command = proc_file(folder + "comm").value_or("");
  while (!command.empty() && (command.back() == '\n' || command.back() == '\0')) command.pop_back();
  for (char& c : command) {
    if (c == '\0') c = ' ';
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (command.size() > longest) command = command.substr(0, longest) + "...";
  return command;
}

// "process <pid> (<command line>)" for the holder of the lock on `fd`, or
// nullopt when /proc/locks does not name one.
std::optional<std::string> lock_holder(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return std::nullopt;
  const std::optional<std::string> locks = proc_file("/proc/locks");
  if (!locks) return std::nullopt;
  const std::optional<pid_t> pid = flock_holder(*locks, st.st_dev, st.st_ino);
  if (!pid) return std::nullopt;
  const std::string command = command_of(*pid);
  return "process " + std::to_string(*pid) + (command.empty() ? "" : " (" + command + ")");
}

}  // namespace

std::optional<pid_t> flock_holder(std::string_view proc_locks, dev_t device, ino_t inode) {
  std::optional<pid_t> holder;
  text::for_each_line(proc_locks, [&](std::size_t, std::string_view line) {
    if (holder) return;
    std::istringstream fields{std::string(line)};
    std::string number, kind, mode, access, where;
    long pid = 0;
    if (!(fields >> number >> kind) || kind != "FLOCK") return;
    if (!(fields >> mode >> access >> pid >> where) || pid <= 0) return;
    unsigned int major_number = 0, minor_number = 0;
    unsigned long long inode_number = 0;
    char end = '\0';
    if (std::sscanf(where.c_str(), "%x:%x:%llu%c", &major_number, &minor_number, &inode_number,
                    &end) != 3) {
      return;
    }
    if (major_number == major(device) && minor_number == minor(device) && inode_number == inode) {
      holder = static_cast<pid_t>(pid);
    }
  });
  return holder;
}

namespace {

std::optional<Esp> open_xbootldr(const fs::path& esp, const std::optional<fs::path>& xbootldr) {
  if (!xbootldr) return std::nullopt;
  std::error_code error;
  if (fs::equivalent(esp, *xbootldr, error)) return std::nullopt;
  return Esp(*xbootldr);
}

}  // namespace

Partitions::Partitions(const fs::path& esp, const std::optional<fs::path>& xbootldr)
    : esp_(esp), xbootldr_(open_xbootldr(esp, xbootldr)) {}

PartitionLocks::PartitionLocks(Partitions& partitions, const EspLock::WaitNotice& on_wait,
                               EspLock::Mode mode)
    : esp_(partitions.esp(), on_wait, std::chrono::seconds(60), mode) {
  if (partitions.separate())
    xbootldr_.emplace(partitions.boot(), on_wait, std::chrono::seconds(60), mode);
}

EspLock::EspLock(Esp& esp, const WaitNotice& on_wait, std::chrono::milliseconds timeout, Mode mode)
    : fd_(esp.open_root()) {
  using clock = std::chrono::steady_clock;
  constexpr auto poll_interval = std::chrono::milliseconds(100);
  const std::string shown = esp.root().string();
  const auto deadline = clock::now() + timeout;
  bool told = false;
  for (;;) {
    if (::flock(fd_.get(), (mode == Mode::shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0) return;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) throw Error(shown, "cannot lock: " + error_text(errno));
    if (!told && on_wait) {
      on_wait("waiting for the lock on " + shown + " held by " +
              lock_holder(fd_.get()).value_or("another process"));
    }
    told = true;
    check_stop();
    const auto now = clock::now();
    if (now >= deadline) {
      const std::optional<std::string> holder = lock_holder(fd_.get());
      throw Error(shown,
                  "another xen-boot-builder run holds the lock; gave up after " +
                      describe(timeout) + (holder ? " (" + *holder + ")" : ""),
                  ErrorKind::lock_timeout);
    }
    std::this_thread::sleep_for(std::min<clock::duration>(poll_interval, deadline - now));
  }
}

EspLock::~EspLock() { ::flock(fd_.get(), LOCK_UN); }

}  // namespace xbb
