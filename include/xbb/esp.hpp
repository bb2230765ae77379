#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "xbb/plan.hpp"

namespace xbb {

// The EFI System Partition: every path handed to it is relative to its root,
// checked (no "/" at the start, no "." or ".." component, every component in
// [A-Za-z0-9+_.-]) and resolved without following symlinks. Nothing outside
// the root is ever read or written. Contract for esp.cpp / apply.cpp.
class Esp {
 public:
  explicit Esp(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }

  // File contents, or nullopt when the file does not exist. Throws Error for a
  // symlink, a non-regular file or an I/O error.
  std::optional<std::string> read(const std::string& path) const;

  // Names of the regular files in a folder (empty when the folder is absent).
  std::vector<std::string> list(const std::string& dir) const;

  // Writes to a temporary name in the same folder, flushes, renames over
  // `path`, flushes the folder. Creates missing folders. Never follows a
  // symlink: a symlink at `path` is replaced, not written through.
  void write_atomic(const std::string& path, const std::string& bytes);

  void remove(const std::string& path);

  // Bytes available to an unprivileged writer.
  std::uint64_t free_bytes() const;

 private:
  std::filesystem::path root_;
};

// Reads what the planner needs to know of the ESP.
EspState read_esp_state(const Esp& esp);

struct ApplyReport {
  std::vector<std::string> written;    // paths whose bytes changed
  std::vector<std::string> unchanged;  // paths skipped because identical
  std::vector<std::string> removed;
  std::vector<std::string> warnings;
};

// Applies a plan in the safe order (images, entries, loader.conf, removals),
// writing only files whose bytes differ. Before writing anything, checks that
// the ESP has room for every changed file; when short, throws Error saying how
// many bytes are missing and changes nothing.
ApplyReport apply_plan(Esp& esp, const Plan& plan);

}  // namespace xbb
