#pragma once

// Small POSIX helpers shared by the files that touch disks. Internal to the
// library: every error is an xbb::Error naming `shown`, the path as the user
// knows it.

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "xbb/error.hpp"
#include "xbb/plan.hpp"
#include "xbb/unique_fd.hpp"

namespace xbb::posix {

// The message of an errno value.
std::string error_text(int error_number);

// "a FIFO", "a character device", "a folder", ...: what a non-regular file
// is, for messages.
std::string file_type_name(mode_t mode);

// Reads until end of file, retrying on EINTR; more than `limit` bytes is an
// error (`what` names the kind of file: "a bootspec may have").
// `expected`: the size the file had when opened, reserved at once.
std::string read_all(int fd, const std::string& shown, std::uint64_t limit, std::string_view what,
                     std::uint64_t expected = 0);

// `when_full` for ENOSPC and EDQUOT (a file system out of room), else
// ErrorKind::failed: the kind of an Error for a failed call.
ErrorKind kind_of(int error_number, ErrorKind when_full);

// Writes every byte, retrying on EINTR and partial writes. A write that
// fails for want of room throws an Error of kind `when_full`.
void write_all(int fd, std::span<const std::uint8_t> bytes, const std::string& shown,
               ErrorKind when_full = ErrorKind::failed);
void write_all(int fd, std::string_view bytes, const std::string& shown);

// The same at a file offset (pwrite), leaving the file offset alone.
void write_all_at(int fd, std::uint64_t offset, std::span<const std::uint8_t> bytes,
                  const std::string& shown, ErrorKind when_full = ErrorKind::failed);

// Reads from a file offset (pread) until `buffer` is full or the file ends,
// retrying on EINTR and partial reads; returns how many bytes were read.
std::size_t read_at(int fd, std::uint64_t offset, std::span<std::uint8_t> buffer,
                    const std::string& shown);

// Reads a regular file of the host (not of the ESP: symlinks are followed, as
// for any other input such as a /nix/store path). Refuses, before reading,
// anything that is not a regular file (a FIFO would block, a device never
// ends) and a file larger than `limit` bytes; `what` names the kind of file
// in that message ("bootspec"). When `check_start` is given, it is called
// with the first `start_bytes` of the file (fewer when the file is shorter)
// and the file's size before the rest is read, and may throw to refuse the
// file.
std::string read_host_file(
    const std::filesystem::path& path, std::uint64_t limit, std::string_view what,
    std::uint64_t start_bytes = 0,
    const std::function<void(std::string_view, std::uint64_t)>& check_start = {});

// Opens a regular host file for reading, with the refusals of read_host_file;
// `stamp` receives its size and modification time, from the descriptor.
UniqueFd open_host_file(const std::filesystem::path& path, std::uint64_t limit,
                        std::string_view what, FileStamp& stamp);

// The size and modification time of a regular host file, with the same
// refusals as read_host_file, for checking an input long before (or instead
// of) reading it.
FileStamp host_file_stamp(const std::filesystem::path& path, std::uint64_t limit,
                          std::string_view what);

// The stamp of a file described by fstat.
FileStamp stamp_of(const struct stat& st);

}  // namespace xbb::posix
