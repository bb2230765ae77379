// measure COMMAND [ARG...]: runs COMMAND and prints one line of figures about
// it for run_bench.py: wall time, peak RSS (wait4's ru_maxrss), CPU time, and
// the kernel's I/O counters of the process (/proc/<pid>/io), read after it
// exited and before it is reaped (waitid with WNOWAIT). COMMAND's standard
// output goes to /dev/null (`--version` prints there), so that this line is
// the only one on the launcher's; its standard error is the launcher's.
//
// A launcher of its own rather than Python's subprocess: a child inherits, as
// the floor of its ru_maxrss, the resident size of the process it was forked
// from (the kernel keeps the larger of the two across exec). Forked from this
// small program, that floor is well under a MiB; forked from Python, it would
// be Python's 10 MiB or more.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>

namespace {

long long nanoseconds(const timespec& t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

long long microseconds(const timeval& t) { return t.tv_sec * 1000000LL + t.tv_usec; }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: measure COMMAND [ARG...]\n");
    return 2;
  }
  timespec start{}, end{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "measure: fork: %s\n", std::strerror(errno));
    return 2;
  }
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, STDOUT_FILENO) < 0) {
      std::fprintf(stderr, "measure: /dev/null: %s\n", std::strerror(errno));
      _exit(127);
    }
    execv(argv[1], argv + 1);
    std::fprintf(stderr, "measure: %s: %s\n", argv[1], std::strerror(errno));
    _exit(127);
  }
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0) {
    std::fprintf(stderr, "measure: waitid: %s\n", std::strerror(errno));
    return 2;
  }
  clock_gettime(CLOCK_MONOTONIC, &end);

  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  std::string counters;
  for (std::string key, value; io >> key >> value;) {
    key.pop_back();  // the ':'
    counters += " " + key + "=" + value;
  }

  int status = 0;
  rusage usage{};
  if (wait4(pid, &status, 0, &usage) != pid) {
    std::fprintf(stderr, "measure: wait4: %s\n", std::strerror(errno));
    return 2;
  }
  std::printf("exit=%d wall_ns=%lld maxrss_kib=%ld utime_us=%lld stime_us=%lld%s\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
              nanoseconds(end) - nanoseconds(start), usage.ru_maxrss, microseconds(usage.ru_utime),
              microseconds(usage.ru_stime), counters.c_str());
  return 0;
}
