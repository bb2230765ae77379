#include "process.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "posix_io.hpp"
#include "xbb/error.hpp"
#include "xbb/unique_fd.hpp"

extern char** environ;

namespace xbb {
namespace {

constexpr std::size_t kMaxOutput = 64 << 10;
constexpr int kFirstPassed = 3;

// posix_spawn file actions, freed on every path.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv, const std::vector<int>& pass) {
  if (argv.empty()) throw Error("run_program: no program");
  // Copies above every number they go to, so that no dup2 below overwrites
  // a file another one still reads from.
  const int first = kFirstPassed + static_cast<int>(pass.size());
  std::vector<UniqueFd> copies;
  for (const int fd : pass) {
    copies.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, first));
    if (!copies.back()) throw Error(argv[0], "cannot pass a file: " + posix::error_text(errno));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    throw Error(argv[0], "cannot create a pipe: " + posix::error_text(errno));
  }
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  FileActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDERR_FILENO);
  posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  for (std::size_t i = 0; i < copies.size(); ++i) {
    posix_spawn_file_actions_adddup2(actions.get(), copies[i].get(),
                                     kFirstPassed + static_cast<int>(i));
  }
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int error =
      ::posix_spawnp(&pid, argv[0].c_str(), actions.get(), nullptr, args.data(), environ);
  if (error != 0) throw Error(argv[0], "cannot start: " + posix::error_text(error));
  write_end.reset();

  ProgramResult result;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(read_end.get(), buffer, sizeof buffer);
    if (n > 0) {
      result.output.append(buffer, static_cast<std::size_t>(std::min<std::size_t>(
                                       static_cast<std::size_t>(n),
                                       kMaxOutput - std::min(kMaxOutput, result.output.size()))));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(argv[0], "cannot wait: " + posix::error_text(errno));
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string passed_path(std::size_t index) {
  return "/proc/self/fd/" + std::to_string(kFirstPassed + static_cast<int>(index));
}

std::string last_line(const std::string& output) {
  std::string text = output;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const std::size_t start = text.rfind('\n');
  return start == std::string::npos ? text : text.substr(start + 1);
}

}  // namespace xbb
