#pragma once

// What a self-contained image embeds besides xen.efi: dom0's kernel and
// initrd from the store, the initrd with its secrets appended when the
// bootspec has initrdSecrets, and optional microcode. Checked, and the
// secrets appended, before planning, so that a generation whose files cannot
// be had is skipped (its old image stays) and the others go on. Internal to
// the library.

#include <filesystem>
#include <optional>
#include <vector>

#include "xbb/generation.hpp"

namespace xbb {

// A folder only this process can read (mode 0700, in $TMPDIR or /tmp),
// removed with everything in it at the end of the run.
class PrivateFolder {
 public:
  PrivateFolder();
  ~PrivateFolder();
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// For each generation with a Xen extension: stamps its kernel and initrd
// (refusing anything but regular files within their limits) and, when its
// bootspec names an initrdSecrets tool, copies the initrd into `scratch` and
// runs the tool on the copy, as NixOS does (`<tool> <copy>`); the copy,
// named by its content's digest, is then what the image embeds. A failure
// sets the generation's problem, naming the file or the tool.
void prepare_embedded_files(std::vector<Generation>& generations, const std::filesystem::path& root,
                            PrivateFolder& scratch);

// The SHA-256 of a host file, read in chunks.
std::string sha256_of_file(const std::filesystem::path& path, std::uint64_t limit);

}  // namespace xbb
