#include "embed.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

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
constexpr std::string_view kFolderPrefix = "xen-boot-builder-";
constexpr std::chrono::seconds kStaleAge{3600};

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

// The host file the bootspec's initrdSecrets names, resolved under `root`:
// only an executable regular file inside the store is run.
fs::path secrets_tool(const fs::path& root, const std::string& path) {
  const fs::path host = host_path(root, path);
  std::error_code error;
  const fs::path resolved = fs::canonical(host, error);
  if (error) throw Error(path, "the initrd secrets tool cannot be found: " + error.message());
  const fs::path store = fs::canonical(root / "nix/store", error);
  const fs::path inside = error ? fs::path() : resolved.lexically_relative(store);
  if (inside.empty() || *inside.begin() == "..") {
    throw Error(path, "the initrd secrets tool is outside /nix/store (it leads to " +
                          resolved.string() + "); not run");
  }
  struct stat st {};
  if (::stat(resolved.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::access(resolved.c_str(), X_OK) != 0) {
    throw Error(path, "the initrd secrets tool is not an executable regular file; not run");
  }
  return resolved;
}

// A private copy of the initrd with the secrets tool run on it.
HostFile initrd_with_secrets(const Generation& generation, const fs::path& root,
                             PrivateFolder& scratch, std::size_t index,
                             std::chrono::milliseconds limit) {
  const fs::path tool = secrets_tool(root, *generation.bootspec->initrd_secrets);
  const fs::path copy = scratch.path() / ("initrd-" + std::to_string(index));
  {
    UniqueFd out(::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) throw Error(copy.string(), "cannot create: " + posix::error_text(errno));
    read_chunks(generation.initrd_file->path, limits::kInitrdBytes, "initrd",
                [&](std::string_view chunk) { posix::write_all(out.get(), chunk, copy.string()); });
  }
  const ProgramResult result = run_program({tool.string(), copy.string()}, {}, limit);
  if (!result.ok()) {
    const std::string said = last_line(result.output);
    throw Error(tool.string(), "the initrd secrets tool failed (" + how_it_ended(result) + ")" +
                                   (said.empty() ? "" : ": " + said));
  }
  HostFile file{copy, posix::host_file_stamp(copy, limits::kInitrdBytes, "initrd"), {}};
  file.digest = sha256_of_file(copy, limits::kInitrdBytes);
  return file;
}

// Whether `path` is a stale private folder of ours: by name, owner and type,
// and unchanged for kStaleAge (a run of a version that did not lock its
// folder may still use a younger one).
bool is_stale_folder(const fs::path& path) {
  const std::string name = path.filename().string();
  if (!name.starts_with(kFolderPrefix) || name.size() != kFolderPrefix.size() + 6) return false;
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid() &&
         st.st_mtime + kStaleAge.count() < std::time(nullptr);
}

// Removes the private folders of runs that ended without removing theirs (a
// crash, SIGKILL): old ones whose lock no process holds.
void remove_stale_folders(const fs::path& base) {
  std::error_code error;
  for (fs::directory_iterator it(base, error), end; !error && it != end; it.increment(error)) {
    const fs::path path = it->path();
    if (!is_stale_folder(path)) continue;
    UniqueFd folder(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!folder || ::flock(folder.get(), LOCK_EX | LOCK_NB) != 0) continue;
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
}

}  // namespace

PrivateFolder::PrivateFolder() {
  const char* tmpdir = std::getenv("TMPDIR");
  const fs::path base = tmpdir && *tmpdir ? tmpdir : "/tmp";
  remove_stale_folders(base);
  std::string pattern = (base / (std::string(kFolderPrefix) + "XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw Error(pattern, "cannot create a private folder: " + posix::error_text(errno));
  }
  path_ = pattern;
  lock_ = UniqueFd(::open(pattern.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!lock_ || ::flock(lock_.get(), LOCK_EX) != 0) {
    const int error = errno;
    std::error_code ignored;
    fs::remove_all(path_, ignored);
    throw Error(pattern, "cannot lock the private folder: " + posix::error_text(error));
  }
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
                            PrivateFolder& scratch, std::chrono::milliseconds limit) {
  std::size_t index = 0;
  for (auto& generation : generations) {
    if (!generation.bootspec || !generation.bootspec->xen) continue;
    check_stop();
    try {
      HostFile& kernel = generation.kernel_file;
      kernel.stamp = posix::host_file_stamp(kernel.path, limits::kKernelBytes, "kernel");
      if (auto& initrd = generation.initrd_file) {
        initrd->stamp = posix::host_file_stamp(initrd->path, limits::kInitrdBytes, "initrd");
        if (generation.bootspec->initrd_secrets) {
          initrd = initrd_with_secrets(generation, root, scratch, index++, limit);
        }
      }
    } catch (const Stopped&) {
      throw;
    } catch (const Error& e) {
      generation.bootspec.reset();
      generation.problem = e.what();
    }
  }
}

}  // namespace xbb
