#pragma once

// Small POSIX helpers shared by the files that touch disks. Internal to the
// library: every error is an xbb::Error naming `shown`, the path as the user
// knows it.

#include <filesystem>
#include <string>

namespace xbb::posix {

// The message of an errno value.
std::string error_text(int error_number);

// Reads until end of file, retrying on EINTR.
std::string read_all(int fd, const std::string& shown);

// Writes every byte, retrying on EINTR and partial writes.
void write_all(int fd, const std::string& bytes, const std::string& shown);

// Reads a file of the host (not of the ESP: symlinks are followed, as for any
// other input such as a /nix/store path).
std::string read_host_file(const std::filesystem::path& path);

}  // namespace xbb::posix
