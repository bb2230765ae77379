#include "pe_test_util.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "xbb/error.hpp"

extern char** environ;

namespace xbb::test {

std::vector<std::uint8_t> read_binary(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(in.tellg()));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return bytes;
}

void write_binary(const std::filesystem::path& path, std::span<const std::uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::filesystem::path deps_dir() {
  const char* dir = std::getenv("XBB_DEPS_DIR");
  return dir && *dir ? dir : XBB_DEPS_DIR;
}

std::filesystem::path deps_file(const std::string& relative) {
  const std::filesystem::path path = deps_dir() / relative;
  if (!std::filesystem::is_regular_file(path)) {
    throw std::runtime_error(path.string() +
                             " is missing: run .ci/setup (or configure with -DXBB_DEPS_DIR=...)");
  }
  return path;
}

std::filesystem::path xen417_efi() {
  return deps_file("xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi");
}
std::filesystem::path xen417_gz() {
  return deps_file("xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.gz");
}
std::filesystem::path xen420_efi() {
  return deps_file("xen-hypervisor-4.20-amd64/boot/xen-4.20-amd64.efi");
}

RunResult run(const std::vector<std::string>& argv) {
  const TempDir capture;
  const std::string out_path = (capture / "stdout").string();
  const std::string err_path = (capture / "stderr").string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("cannot start " + argv[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) throw std::runtime_error("waitpid failed for " + argv[0]);

  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  const auto out = read_binary(out_path);
  const auto err = read_binary(err_path);
  result.out.assign(out.begin(), out.end());
  result.err.assign(err.begin(), err.end());
  return result;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/xbb-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const xbb::Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace xbb::test
