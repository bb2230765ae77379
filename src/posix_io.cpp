#include "posix_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "xbb/error.hpp"
#include "xbb/unique_fd.hpp"

namespace xbb {

void UniqueFd::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

namespace posix {
namespace {

std::string too_large(std::uint64_t size, std::uint64_t limit, std::string_view what) {
  return std::to_string(size) + " bytes, more than the " + std::to_string(limit) + " a " +
         std::string(what) + " may have";
}

// Appends the rest of the file to `bytes`, retrying on EINTR; more than
// `limit` bytes in all is an error.
void append_all(int fd, std::string& bytes, const std::string& shown, std::uint64_t limit,
                std::string_view what) {
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      bytes.append(buffer, static_cast<std::size_t>(n));
      if (bytes.size() > limit) throw Error(shown, too_large(bytes.size(), limit, what));
    } else if (n == 0) {
      return;
    } else if (errno != EINTR) {
      throw Error(shown, "cannot read: " + error_text(errno));
    }
  }
}

}  // namespace

// Without blocking on a FIFO or taking a terminal.
UniqueFd open_host_file(const std::filesystem::path& path, std::uint64_t limit,
                        std::string_view what, FileStamp& stamp) {
  const std::string shown = path.string();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) throw Error(shown, "cannot open: " + error_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(shown, "cannot stat: " + error_text(errno));
  if (!S_ISREG(st.st_mode))
    throw Error(shown, "is " + file_type_name(st.st_mode) + ", not a regular file");
  stamp = stamp_of(st);
  if (stamp.size > limit) throw Error(shown, too_large(stamp.size, limit, what));
  return fd;
}

std::string error_text(int error_number) { return std::strerror(error_number); }

FileStamp stamp_of(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

std::string file_type_name(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISLNK(mode)) return "a symlink";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a file of unknown type";
}

std::string read_all(int fd, const std::string& shown, std::uint64_t limit, std::string_view what,
                     std::uint64_t expected) {
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(std::min(expected, limit)) + 1);
  append_all(fd, bytes, shown, limit, what);
  return bytes;
}

ErrorKind kind_of(int error_number, ErrorKind when_full) {
  return error_number == ENOSPC || error_number == EDQUOT ? when_full : ErrorKind::failed;
}

void write_all(int fd, std::span<const std::uint8_t> bytes, const std::string& shown,
               ErrorKind when_full) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
    } else if (const int error_number = errno; error_number != EINTR) {
      throw Error(shown, "cannot write: " + error_text(error_number),
                  kind_of(error_number, when_full));
    }
  }
}

void write_all(int fd, std::string_view bytes, const std::string& shown) {
  write_all(fd, std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()),
            shown);
}

void write_all_at(int fd, std::uint64_t offset, std::span<const std::uint8_t> bytes,
                  const std::string& shown, ErrorKind when_full) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
    } else if (const int error_number = errno; error_number != EINTR) {
      throw Error(shown, "cannot write: " + error_text(error_number),
                  kind_of(error_number, when_full));
    }
  }
}

std::size_t read_at(int fd, std::uint64_t offset, std::span<std::uint8_t> buffer,
                    const std::string& shown) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n =
        ::pread(fd, buffer.data() + done, buffer.size() - done, static_cast<off_t>(offset + done));
    if (n == 0) break;
    if (n > 0) {
      done += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      throw Error(shown, "cannot read: " + error_text(errno));
    }
  }
  return done;
}

std::string read_host_file(
    const std::filesystem::path& path, std::uint64_t limit, std::string_view what,
    std::uint64_t start_bytes,
    const std::function<void(std::string_view, std::uint64_t)>& check_start) {
  FileStamp stamp;
  UniqueFd fd = open_host_file(path, limit, what, stamp);
  const std::uint64_t size = stamp.size;
  const std::string shown = path.string();
  // One buffer of the file's size: the whole file is held once, never copied.
  std::string bytes;
  bytes.reserve(static_cast<std::size_t>(size));
  if (!check_start) {
    append_all(fd.get(), bytes, shown, limit, what);
    return bytes;
  }
  bytes.resize(static_cast<std::size_t>(std::min(start_bytes, size)));
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(shown, "cannot read: " + error_text(errno));
    done += static_cast<std::size_t>(n);
  }
  bytes.resize(done);
  check_start(bytes, size);
  append_all(fd.get(), bytes, shown, limit, what);
  return bytes;
}

FileStamp host_file_stamp(const std::filesystem::path& path, std::uint64_t limit,
                          std::string_view what) {
  FileStamp stamp;
  open_host_file(path, limit, what, stamp);
  return stamp;
}

}  // namespace posix
}  // namespace xbb
