#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "posix_io.hpp"
#include "text.hpp"
#include "xbb/builder.hpp"
#include "xbb/unique_fd.hpp"

extern char** environ;

namespace xbb {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxOutput = 64 << 10;
constexpr std::size_t kMaxLine = 1024;
constexpr int kFirstPassed = 3;

// Set once by defer_stop_signals.
std::atomic<bool> stop_signals_deferred{false};

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (const int signal : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, signal);
  return set;
}

// The stop signal pending, or 0.
int pending_stop() {
  if (!stop_signals_deferred) return 0;
  sigset_t pending;
  sigemptyset(&pending);
  if (::sigpending(&pending) != 0) return 0;
  for (const int signal : {SIGTERM, SIGINT, SIGHUP}) {
    if (sigismember(&pending, signal) == 1) return signal;
  }
  return 0;
}

std::string signal_name(int signal) {
  const char* name = ::sigabbrev_np(signal);
  return name ? std::string("SIG") + name : "signal " + std::to_string(signal);
}

std::string duration_text(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + " s";
  return std::to_string(duration.count()) + " ms";
}

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

// posix_spawn attributes: a process group of its own, no signal blocked, the
// signals we might block or ignore back to their default.
class SpawnAttributes {
 public:
  SpawnAttributes() {
    posix_spawnattr_init(&attributes_);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attributes_, &none);
    sigset_t defaults = stop_signals();
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attributes_, &defaults);
    posix_spawnattr_setpgroup(&attributes_, 0);
    posix_spawnattr_setflags(
        &attributes_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  ~SpawnAttributes() { posix_spawnattr_destroy(&attributes_); }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  posix_spawnattr_t* get() { return &attributes_; }

 private:
  posix_spawnattr_t attributes_;
};

// Keeps the last kMaxOutput bytes of what is appended.
void append_tail(std::string& output, const char* bytes, std::size_t size) {
  output.append(bytes, size);
  if (output.size() > 2 * kMaxOutput) output.erase(0, output.size() - kMaxOutput);
}

// Reads what the pipe holds now; false at its end (or on an error).
bool read_available(int fd, std::string& output) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      append_tail(output, buffer, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && errno == EAGAIN;
    }
  }
}

}  // namespace

ProgramResult run_program(const std::vector<std::string>& argv, const std::vector<int>& pass,
                          std::chrono::milliseconds limit, std::chrono::milliseconds grace) {
  if (argv.empty()) throw Error("run_program: no program");
  check_stop();
  // Copies above every number they go to, so that no dup2 below overwrites
  // a file another one still reads from.
  const int first = kFirstPassed + static_cast<int>(pass.size());
  std::vector<UniqueFd> copies;
  for (const int fd : pass) {
    copies.emplace_back(::fcntl(fd, F_DUPFD_CLOEXEC, first));
    if (!copies.back()) throw Error(argv[0], "cannot pass a file: " + posix::error_text(errno));
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw Error(argv[0], "cannot create a pipe: " + posix::error_text(errno));
  }
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  // The child's end blocks as usual.
  ::fcntl(write_end.get(), F_SETFL, 0);
  UniqueFd signals;
  if (stop_signals_deferred) {
    const sigset_t set = stop_signals();
    signals = UniqueFd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signals) throw Error(argv[0], "cannot watch for signals: " + posix::error_text(errno));
  }
  FileActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), write_end.get(), STDERR_FILENO);
  posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  for (std::size_t i = 0; i < copies.size(); ++i) {
    posix_spawn_file_actions_adddup2(actions.get(), copies[i].get(),
                                     kFirstPassed + static_cast<int>(i));
  }
  SpawnAttributes attributes;
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int error =
      ::posix_spawnp(&pid, argv[0].c_str(), actions.get(), attributes.get(), args.data(), environ);
  if (error != 0) throw Error(argv[0], "cannot start: " + posix::error_text(error));
  write_end.reset();
  UniqueFd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!exited) {
    const int open_error = errno;
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw Error(argv[0], "cannot watch the program: " + posix::error_text(open_error));
  }

  ProgramResult result;
  int stopped_by = 0;
  bool killed = false;                                // SIGKILL sent
  Clock::time_point deadline = Clock::now() + limit;  // of the limit, then of the grace period
  // The group gets SIGTERM now and SIGKILL after the grace period.
  auto terminate = [&]() {
    ::kill(-pid, SIGTERM);
    deadline = Clock::now() + grace;
  };
  for (;;) {
    struct pollfd fds[3] = {{exited.get(), POLLIN, 0},
                            {read_end ? read_end.get() : -1, POLLIN, 0},
                            {signals && !stopped_by ? signals.get() : -1, POLLIN, 0}};
    int timeout = -1;  // after SIGKILL: until it is gone
    if (!killed) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      timeout = static_cast<int>(std::clamp<long long>(left.count(), 0, 1 << 30));
    }
    if (::poll(fds, 3, timeout) < 0 && errno != EINTR) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      throw Error(argv[0], "cannot wait: " + posix::error_text(errno));
    }
    if (fds[1].revents && !read_available(read_end.get(), result.output)) read_end.reset();
    if (fds[0].revents) break;
    if (fds[2].revents && !stopped_by) {
      stopped_by = pending_stop();
      if (stopped_by && !result.timed_out) terminate();
    }
    if (!killed && Clock::now() >= deadline) {
      if (!result.timed_out && !stopped_by) {
        result.timed_out = limit;
        terminate();
      } else if (!killed) {
        ::kill(-pid, SIGKILL);
        killed = true;
      }
    }
  }
  if (read_end) read_available(read_end.get(), result.output);
  // What it left running in its group; the group's id cannot be reused
  // before the program is reaped.
  ::kill(-pid, SIGTERM);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(argv[0], "cannot wait: " + posix::error_text(errno));
  }
  if (stopped_by) throw Stopped(stopped_by);
  if (result.output.size() > kMaxOutput) result.output.erase(0, result.output.size() - kMaxOutput);
  if (WIFEXITED(status)) {
    result.status = WEXITSTATUS(status);
  } else {
    result.signal = WTERMSIG(status);
  }
  return result;
}

std::string passed_path(std::size_t index) {
  return "/proc/self/fd/" + std::to_string(kFirstPassed + static_cast<int>(index));
}

std::string last_line(const std::string& output) {
  std::string_view text = output;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const std::size_t start = text.rfind('\n');
  std::string_view line = start == std::string_view::npos ? text : text.substr(start + 1);
  if (line.size() <= kMaxLine) return text::printable(line);
  return "..." + text::printable(line.substr(line.size() - kMaxLine));
}

std::string how_it_ended(const ProgramResult& result) {
  if (result.timed_out) return "timed out after " + duration_text(*result.timed_out);
  if (result.signal) return "killed by " + signal_name(*result.signal);
  return "exit status " + std::to_string(result.status);
}

Stopped::Stopped(int signal) : Error("stopped by " + signal_name(signal)) {}

void defer_stop_signals() {
  const sigset_t set = stop_signals();
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  stop_signals_deferred = true;
}

void check_stop() {
  if (const int signal = pending_stop()) throw Stopped(signal);
}

}  // namespace xbb
