#pragma once

// What a self-contained image embeds besides xen.efi: dom0's kernel and
// initrd from the store, the initrd with its secrets appended when the
// bootspec has initrdSecrets, and optional microcode. Checked, and the
// secrets appended, before planning, so that a generation whose files cannot
// be had is skipped (its old image stays) and the others go on. Internal to
// the library.

#include <chrono>
#include <filesystem>
#include <optional>
#include <vector>

#include "xbb/generation.hpp"
#include "xbb/unique_fd.hpp"

namespace xbb {

// A folder only this process can read (mode 0700, in $TMPDIR or /tmp),
// removed with everything in it at the end of the run. It is locked (flock)
// while it lives; the folders of runs that could not remove theirs (killed),
// which no process holds locked and unchanged for an hour, are removed first.
class PrivateFolder {
 public:
  PrivateFolder();
  ~PrivateFolder();
  PrivateFolder(const PrivateFolder&) = delete;
  PrivateFolder& operator=(const PrivateFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  UniqueFd lock_;
};

// For each generation with a Xen extension: stamps its kernel and initrd
// (refusing anything but regular files within their limits) and, when its
// bootspec names an initrdSecrets tool, copies the initrd into `scratch` and
// runs the tool on the copy, as NixOS does (`<tool> <copy>`), for at most
// `limit`; the copy, named by its content's digest, is then what the image
// embeds. Only an executable regular file inside the store (under `root`,
// symbolic links followed) is run. A failure sets the generation's problem,
// naming the file or the tool; a stop signal throws Stopped.
void prepare_embedded_files(std::vector<Generation>& generations, const std::filesystem::path& root,
                            PrivateFolder& scratch, std::chrono::milliseconds limit);

// The SHA-256 of a host file, read in chunks.
std::string sha256_of_file(const std::filesystem::path& path, std::uint64_t limit);

}  // namespace xbb
