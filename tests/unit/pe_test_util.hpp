#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

// Files, temporary folders and child processes for the PE and ELF tests.
namespace xbb::test {

std::vector<std::uint8_t> read_binary(const std::filesystem::path& path);
void write_binary(const std::filesystem::path& path, std::span<const std::uint8_t> bytes);

// Where .ci/setup unpacked the Debian packages: $XBB_DEPS_DIR when set (so
// that a check can hide them), else the folder the build was configured with.
std::filesystem::path deps_dir();

// A file from those packages. Throws when it is missing, so that a test
// needing it fails instead of passing.
std::filesystem::path deps_file(const std::string& relative);
std::filesystem::path xen417_efi();
std::filesystem::path xen417_gz();
std::filesystem::path xen420_efi();

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a program found in PATH with exactly these arguments (no shell) and
// collects its exit code and output.
RunResult run(const std::vector<std::string>& argv);

// A fresh folder under TMPDIR (or /tmp), removed with its contents at the end.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// The message of the xbb::Error `action` throws, or "no error".
std::string error_of(const std::function<void()>& action);

}  // namespace xbb::test
