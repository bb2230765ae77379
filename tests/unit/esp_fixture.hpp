#pragma once

// Temporary folders, size-limited tmpfs mounts and whole-tree snapshots for
// the tests of the ESP shell. Everything here uses the host file system
// directly (std::filesystem, POSIX), independently of the code under test.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "xbb/error.hpp"

namespace esp_test {

namespace fs = std::filesystem;

[[noreturn]] inline void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// A fresh folder from mkdtemp, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string name = (fs::temp_directory_path() / "xbb-esp-test-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) fail("mkdtemp " + name);
    path_ = name;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A tmpfs mounted on a fresh temporary folder, unmounted on destruction.
// Failing to mount is an error (the tests run as root), not a reason to skip.
class Tmpfs {
 public:
  explicit Tmpfs(const std::string& options) {
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
      fail("mount -t tmpfs -o " + options + " " + dir_.path().string());
    }
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  ~Tmpfs() {
    if (::umount2(dir_.path().c_str(), 0) != 0) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  const fs::path& path() const { return dir_.path(); }

  void remount(const std::string& options) {
    if (::mount("tmpfs", dir_.path().c_str(), nullptr, MS_REMOUNT, options.c_str()) != 0) {
      fail("mount -o remount," + options + " " + dir_.path().string());
    }
  }

  // Inodes in use, as statvfs reports them.
  std::uint64_t used_inodes() const {
    struct statvfs stats {};
    if (::statvfs(dir_.path().c_str(), &stats) != 0) fail("statvfs " + dir_.path().string());
    return stats.f_files - stats.f_ffree;
  }

 private:
  TempDir dir_;
};

inline void write_file(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  if (!out.flush()) fail("write " + path.string());
}

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail("open " + path.string());
  std::string bytes(static_cast<std::size_t>(in.tellg()), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())))
    fail("read " + path.string());
  return bytes;
}

inline struct stat lstat_of(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) fail("lstat " + path.string());
  return st;
}

// What a file system entry is, down to its inode and modification time, so
// that "unchanged" means not rewritten, not merely equal bytes.
struct EntryState {
  char kind = '?';      // 'f' regular file, 'd' folder, 'l' symlink
  std::string content;  // file bytes or symlink target
  ino_t inode = 0;
  std::int64_t mtime_ns = 0;
  mode_t mode = 0;
  bool operator==(const EntryState&) const = default;
};

using Snapshot = std::map<std::string, EntryState>;

inline Snapshot snapshot(const fs::path& root) {
  Snapshot result;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(root)) {
    struct stat st = lstat_of(entry.path());
    EntryState state;
    state.inode = st.st_ino;
    state.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    state.mode = st.st_mode;
    if (S_ISLNK(st.st_mode)) {
      state.kind = 'l';
      state.content = fs::read_symlink(entry.path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      state.kind = 'd';
    } else if (S_ISREG(st.st_mode)) {
      state.kind = 'f';
      state.content = read_file(entry.path());
    }
    result[fs::relative(entry.path(), root).string()] = state;
  }
  return result;
}

// Names (relative to root) of every temporary left anywhere under root.
inline std::vector<std::string> temporaries_under(const fs::path& root) {
  std::vector<std::string> found;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(root)) {
    if (entry.path().filename().string().find(".xbb-tmp-") != std::string::npos) {
      found.push_back(fs::relative(entry.path(), root).string());
    }
  }
  return found;
}

inline fs::path xen_efi() {
  const char* dir = std::getenv("XBB_DEPS_DIR");
  return fs::path(dir && *dir ? dir : XBB_DEPS_DIR) /
         "xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi";
}

// The message of the xbb::Error `action` throws; a test failure when it throws none.
inline std::string error_from(const std::function<void()>& action) {
  try {
    action();
  } catch (const xbb::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no xbb::Error thrown";
  return "";
}

// Everything a pipe's reading end gives until its writers close it.
inline std::string read_to_end(int fd) {
  std::string bytes;
  char buffer[512];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0)
    bytes.append(buffer, static_cast<std::size_t>(n));
  return bytes;
}

// The exit code of a child process once it ended; -1 when it was killed.
inline int exit_code_of(pid_t child) {
  int status = 0;
  if (::waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct ChildResult {
  int exit_code = -1;
  std::string said;  // what `body` returned, or the message of what it threw
};

// Runs `body` in a forked child process (its own memory, its own locks) and
// returns what it said: exit code 0 with its result, 1 with the message of an
// exception it threw.
inline ChildResult in_child(const std::function<std::string()>& body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {
    ::close(pipe_fds[0]);
    std::string said;
    int code = 0;
    try {
      said = body();
    } catch (const std::exception& e) {
      said = e.what();
      code = 1;
    }
    if (::write(pipe_fds[1], said.data(), said.size()) != static_cast<ssize_t>(said.size()))
      code = 2;
    ::_exit(code);
  }
  ::close(pipe_fds[1]);
  ChildResult result;
  result.said = read_to_end(pipe_fds[0]);
  ::close(pipe_fds[0]);
  result.exit_code = exit_code_of(child);
  return result;
}

}  // namespace esp_test
