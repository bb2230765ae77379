#pragma once

// Running another program (the initrd secrets tool, sbsign, sbverify):
// never through a shell, with the arguments given one by one, each in its own
// process group, with /dev/null as input and a time limit. Also how a
// one-shot run stops on SIGTERM, SIGINT or SIGHUP. Internal to the library.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "xbb/error.hpp"

namespace xbb {

// How long a program that outlived its time limit has after SIGTERM before
// its group gets SIGKILL.
inline constexpr std::chrono::milliseconds kKillGrace{5000};

struct ProgramResult {
  int status = 0;             // the exit status, when it exited
  std::optional<int> signal;  // the signal that ended it
  // Set when it outlived its time limit (it was then killed): the limit.
  std::optional<std::chrono::milliseconds> timed_out;
  std::string output;  // the end of what it wrote on stdout and stderr, up to 64 KiB

  bool ok() const { return !signal && !timed_out && status == 0; }
};

// Runs argv[0] (a path, or a name looked up in PATH) with argv and returns
// how it ended. Throws Error when it cannot be started. The open files `pass`
// are the program's file descriptors 3, 4, ... in that order (it opens them
// as /proc/self/fd/3 and so on: see passed_path); no other file of ours is
// open in it. Its input is /dev/null, it leads a process group of its own,
// with no signal blocked or ignored. After `limit` its group gets SIGTERM,
// and SIGKILL `grace` later. The call returns when the program itself
// exits, without waiting for the end of its output: what it left running in
// its group gets SIGTERM. When a stop signal arrives (see
// defer_stop_signals), its group is killed so too and Stopped is thrown.
ProgramResult run_program(const std::vector<std::string>& argv, const std::vector<int>& pass,
                          std::chrono::milliseconds limit,
                          std::chrono::milliseconds grace = kKillGrace);

// The path a program run with `pass` opens its file number `index` by.
std::string passed_path(std::size_t index);

// The last line of a program's output, for one-line messages ("" when none):
// every byte outside printable ASCII escaped as \xNN, the line's end kept
// when it is long.
std::string last_line(const std::string& output);

// How a program that did not succeed ended: "exit status 3", "killed by
// SIGSEGV", "timed out after 60 s".
std::string how_it_ended(const ProgramResult& result);

// Thrown when a stop signal ends a one-shot run: "stopped by SIGTERM".
class Stopped : public Error {
 public:
  explicit Stopped(int signal);
};

// Throws Stopped when a stop signal is pending since defer_stop_signals
// (xbb/builder.hpp; never without it: the daemon reads those signals itself).
void check_stop();

}  // namespace xbb
