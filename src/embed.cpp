#include "embed.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>

#include "limits.hpp"
#include "posix_io.hpp"
#include "process.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/unique_fd.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

constexpr std::size_t kChunk = 1 << 20;

// Calls `each` with the bytes of a regular host file, a chunk at a time.
template <typename Each>
void read_chunks(const fs::path& path, std::uint64_t limit, std::string_view what, Each each) {
  posix::host_file_stamp(path, limit, what);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) throw Error(path.string(), "cannot open: " + posix::error_text(errno));
  std::string buffer(kChunk, '\0');
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n == 0) return;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(path.string(), "cannot read: " + posix::error_text(errno));
    }
    total += static_cast<std::uint64_t>(n);
    if (total > limit) throw Error(path.string(), "grew past its limit while it was read");
    each(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
  }
}

// A private copy of the initrd with the secrets tool run on it.
HostFile initrd_with_secrets(const Generation& generation, const fs::path& root,
                             PrivateFolder& scratch, std::size_t index) {
  const fs::path tool = host_path(root, *generation.bootspec->initrd_secrets);
  const fs::path copy = scratch.path() / ("initrd-" + std::to_string(index));
  {
    UniqueFd out(::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) throw Error(copy.string(), "cannot create: " + posix::error_text(errno));
    read_chunks(generation.initrd_file->path, limits::kInitrdBytes, "initrd",
                [&](std::string_view chunk) { posix::write_all(out.get(), chunk, copy.string()); });
  }
  const ProgramResult result = run_program({tool.string(), copy.string()});
  if (result.status != 0) {
    const std::string said = last_line(result.output);
    throw Error(tool.string(), "the initrd secrets tool failed (exit status " +
                                   std::to_string(result.status) + ")" +
                                   (said.empty() ? "" : ": " + said));
  }
  HostFile file{copy, posix::host_file_stamp(copy, limits::kInitrdBytes, "initrd"), {}};
  file.digest = sha256_of_file(copy, limits::kInitrdBytes);
  return file;
}

}  // namespace

PrivateFolder::PrivateFolder() {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern =
      (fs::path(tmpdir && *tmpdir ? tmpdir : "/tmp") / "xen-boot-builder-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw Error(pattern, "cannot create a private folder: " + posix::error_text(errno));
  }
  path_ = pattern;
}

PrivateFolder::~PrivateFolder() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string sha256_of_file(const fs::path& path, std::uint64_t limit) {
  Sha256 hash;
  read_chunks(path, limit, "file", [&](std::string_view chunk) { hash.update(chunk); });
  return hash.hex();
}

void prepare_embedded_files(std::vector<Generation>& generations, const fs::path& root,
                            PrivateFolder& scratch) {
  std::size_t index = 0;
  for (auto& generation : generations) {
    if (!generation.bootspec || !generation.bootspec->xen) continue;
    try {
      HostFile& kernel = generation.kernel_file;
      kernel.stamp = posix::host_file_stamp(kernel.path, limits::kKernelBytes, "kernel");
      if (auto& initrd = generation.initrd_file) {
        initrd->stamp = posix::host_file_stamp(initrd->path, limits::kInitrdBytes, "initrd");
        if (generation.bootspec->initrd_secrets) {
          initrd = initrd_with_secrets(generation, root, scratch, index++);
        }
      }
    } catch (const Error& e) {
      generation.bootspec.reset();
      generation.problem = e.what();
    }
  }
}

}  // namespace xbb
