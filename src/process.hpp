#pragma once

// Running another program (the initrd secrets tool, sbsign, sbverify):
// never through a shell, with the arguments given one by one. Internal to
// the library.

#include <cstddef>
#include <string>
#include <vector>

namespace xbb {

struct ProgramResult {
  int status = 0;      // the exit status; 128 + signal number when killed by one
  std::string output;  // what it wrote on stdout and stderr, up to 64 KiB
};

// Runs argv[0] (a path, or a name looked up in PATH) with argv, waits for it
// and returns how it ended. Throws Error when it cannot be started. The open
// files `pass` are the program's file descriptors 3, 4, ... in that order
// (it opens them as /proc/self/fd/3 and so on: see passed_path); no other
// file of ours is open in it.
ProgramResult run_program(const std::vector<std::string>& argv, const std::vector<int>& pass = {});

// The path a program run with `pass` opens its file number `index` by.
std::string passed_path(std::size_t index);

// The last line of a program's output, for one-line messages ("" when none).
std::string last_line(const std::string& output);

}  // namespace xbb
