// Running other programs: time limits that kill the whole process group, no
// wait for the end of output a background child holds, /dev/null as input,
// and messages that say how a program ended (its last line, escaped; the
// signal by name).
#include "process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "esp_fixture.hpp"
#include "xbb/builder.hpp"

namespace {

using namespace esp_test;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kLimit{60000};

xbb::ProgramResult run_shell(const std::string& script, milliseconds limit = kLimit,
                             milliseconds grace = xbb::kKillGrace) {
  return xbb::run_program({"/bin/sh", "-c", script}, {}, limit, grace);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Whether the process is gone (or a zombie nobody reaped yet), waiting up to 5 s.
bool process_gone(pid_t pid) {
  for (int i = 0; i < 250; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(stat, text)) return true;
    const auto close = text.rfind(')');
    if (close != std::string::npos && close + 2 < text.size() && text[close + 2] == 'Z')
      return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

pid_t pid_in(const fs::path& file) {
  std::ifstream in(file);
  pid_t pid = 0;
  in >> pid;
  return pid;
}

TEST(RunProgram, ASleepingProgramAndItsGroupAreKilledAfterTheLimit) {
  TempDir dir;
  const fs::path pid_file = dir.path() / "pid";
  const auto start = Clock::now();
  const xbb::ProgramResult result =
      run_shell("sleep 100 & echo $! > " + pid_file.string() + "; sleep 100", milliseconds(300));
  EXPECT_LT(seconds_since(start), 4.0);
  ASSERT_TRUE(result.timed_out);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(xbb::how_it_ended(result), "timed out after 300 ms");
  const pid_t background = pid_in(pid_file);
  ASSERT_GT(background, 0);
  EXPECT_TRUE(process_gone(background)) << "the program's background child outlived it";
}

TEST(RunProgram, AProgramIgnoringSigtermGetsSigkillAfterTheGrace) {
  const auto start = Clock::now();
  const xbb::ProgramResult result =
      run_shell("trap '' TERM; sleep 100", milliseconds(200), milliseconds(300));
  EXPECT_LT(seconds_since(start), 4.0);
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.signal, SIGKILL);
}

TEST(RunProgram, TheLimitReadsAsSecondsWhenWhole) {
  EXPECT_EQ(xbb::how_it_ended(run_shell("sleep 100", milliseconds(1000))), "timed out after 1 s");
}

TEST(RunProgram, ABackgroundChildHoldingStdoutDoesNotBlock) {
  const auto start = Clock::now();
  const xbb::ProgramResult result = run_shell("sleep 30 & echo done");
  EXPECT_LT(seconds_since(start), 10.0) << "waited for the end of the output";
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.output, "done\n");
}

TEST(RunProgram, InputIsDevNull) {
  const auto start = Clock::now();
  const xbb::ProgramResult result = run_shell("readlink /proc/self/fd/0; cat");
  EXPECT_LT(seconds_since(start), 10.0);
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.output, "/dev/null\n");
}

TEST(RunProgram, RunsInAProcessGroupOfItsOwn) {
  const xbb::ProgramResult result = run_shell("cut -d' ' -f5 /proc/$$/stat; echo $$");
  ASSERT_TRUE(result.ok()) << result.output;
  std::istringstream lines(result.output);
  pid_t group = 0, pid = 0;
  lines >> group >> pid;
  EXPECT_EQ(group, pid);
  EXPECT_NE(group, ::getpgrp());
}

TEST(RunProgram, ASignalIsReportedByName) {
  const xbb::ProgramResult result = run_shell("echo about to crash; kill -SEGV $$");
  EXPECT_EQ(result.signal, SIGSEGV);
  EXPECT_EQ(xbb::how_it_ended(result), "killed by SIGSEGV");
  EXPECT_EQ(xbb::last_line(result.output), "about to crash");
}

TEST(RunProgram, TheLastLineIsKeptOfALongOutput) {
  const xbb::ProgramResult result = run_shell(
      "i=0; while [ $i -lt 20000 ]; do echo \"line $i of the noise\"; i=$((i+1)); done; "
      "echo 'the real reason' >&2; exit 4");
  EXPECT_EQ(result.status, 4);
  EXPECT_LE(result.output.size(), 64u << 10);
  EXPECT_EQ(xbb::how_it_ended(result), "exit status 4");
  EXPECT_EQ(xbb::last_line(result.output), "the real reason");
}

TEST(RunProgram, ControlCharactersInTheLastLineAreEscaped) {
  const xbb::ProgramResult result = run_shell("printf 'bad\\033[2Jkey\\rhere\\n\\n'; exit 1");
  EXPECT_EQ(xbb::last_line(result.output), "bad\\x1b[2Jkey\\x0dhere");
}

// A stop signal while a program runs: the program's group is killed and the
// run stops with Stopped.
TEST(RunProgram, AStopSignalKillsTheProgramAndStopsTheRun) {
  TempDir dir;
  const fs::path pid_file = dir.path() / "pid";
  const ChildResult child = in_child([&] {
    xbb::defer_stop_signals();
    run_shell("sleep 100 & echo $! > " + pid_file.string() + "; kill -TERM $PPID; wait");
    return std::string("not stopped");
  });
  EXPECT_EQ(child.exit_code, 1);
  EXPECT_EQ(child.said, "stopped by SIGTERM");
  const pid_t background = pid_in(pid_file);
  ASSERT_GT(background, 0);
  EXPECT_TRUE(process_gone(background));
}

TEST(RunProgram, APendingStopSignalStartsNothing) {
  TempDir dir;
  const ChildResult child = in_child([&] {
    xbb::defer_stop_signals();
    ::raise(SIGINT);
    run_shell("touch " + (dir.path() / "ran").string());
    return std::string("not stopped");
  });
  EXPECT_EQ(child.said, "stopped by SIGINT");
  EXPECT_FALSE(fs::exists(dir.path() / "ran"));
}

}  // namespace
