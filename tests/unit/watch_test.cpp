#include "xbb/watch.hpp"

#include <gtest/gtest.h>

namespace xbb {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;

TEST(Watch, ProfileLinksOfTheSystemProfileCallForARun) {
  EXPECT_TRUE(calls_for_run(WatchedFolder::profiles, "system"));
  EXPECT_TRUE(calls_for_run(WatchedFolder::profiles, "system-42-link"));
  EXPECT_TRUE(calls_for_run(WatchedFolder::profiles, "system-profiles"));
  EXPECT_FALSE(calls_for_run(WatchedFolder::profiles, "default-3-link"));
  EXPECT_FALSE(calls_for_run(WatchedFolder::profiles, "per-user"));
  EXPECT_TRUE(calls_for_run(WatchedFolder::system_profiles, "work-7-link"));
}

TEST(Watch, OnlyEntriesTheDaemonDoesNotWriteCallForARun) {
  EXPECT_TRUE(calls_for_run(WatchedFolder::entries, "nixos-generation-7.conf"));
  EXPECT_TRUE(calls_for_run(WatchedFolder::entries, "nixos-generation-7.conf.tmp"));
  EXPECT_TRUE(calls_for_run(WatchedFolder::entries, "other.conf"));
  EXPECT_FALSE(calls_for_run(WatchedFolder::entries, "xen-generation-7.conf"));
  EXPECT_FALSE(calls_for_run(WatchedFolder::entries, "xen-generation-7+3.conf"));
  EXPECT_FALSE(
      calls_for_run(WatchedFolder::entries, "nixos-generation-7.conf.xbb-tmp-0123456789abcdef"));
}

TEST(Watch, BackoffStartsAtASecondAndDoublesUpToFiveMinutes) {
  EXPECT_EQ(next_backoff(milliseconds(0)), milliseconds(1000));
  EXPECT_EQ(next_backoff(milliseconds(1000)), milliseconds(2000));
  EXPECT_EQ(next_backoff(milliseconds(2000)), milliseconds(4000));
  EXPECT_EQ(next_backoff(milliseconds(256000)), minutes(5));
  EXPECT_EQ(next_backoff(minutes(5)), minutes(5));
}

TEST(Watch, ABuildWaitsForQuietButNoLongerThanTheMaximumAfterTheFirstChange) {
  const auto start = std::chrono::steady_clock::time_point{} + minutes(1);
  const milliseconds debounce(2000), most(30000);
  EXPECT_EQ(build_due(start, start, debounce, most), start + debounce);
  // A writer that changes something every 0.2 s: each change postpones the
  // build, until 30 s after the first.
  EXPECT_EQ(build_due(start + milliseconds(10000), start, debounce, most),
            start + milliseconds(12000));
  EXPECT_EQ(build_due(start + milliseconds(29000), start, debounce, most), start + most);
  EXPECT_EQ(build_due(start + milliseconds(29800), start, debounce, most), start + most);
  // Never in the past.
  EXPECT_EQ(build_due(start + milliseconds(31000), start, debounce, most),
            start + milliseconds(31000));
  EXPECT_EQ(build_due(start, start, debounce, milliseconds(0)), start);
}

TEST(Watch, SummaryCountsAndNamesTheChanges) {
  RunResult result;
  result.entries = 7;
  EXPECT_EQ(run_summary(result), "no change (7 Xen entries)");
  result.changes = {{'+', "xen-generation-7", ""},
                    {'+', "xen-generation-8", ""},
                    {'-', "xen-generation-1", ""},
                    {'~', "xen-generation-6", "title, version"}};
  EXPECT_EQ(run_summary(result),
            "2 added, 1 removed, 1 changed: +xen-generation-7 +xen-generation-8 "
            "-xen-generation-1 ~xen-generation-6 (title, version) (7 Xen entries)");
}

TEST(Watch, SummarySaysWhyARunFailed) {
  RunResult result;
  result.error = ErrorKind::esp_missing;
  result.error_message = "/boot: cannot open the ESP: No such file or directory";
  EXPECT_EQ(run_summary(result),
            "error: run failed (esp-missing): /boot: cannot open the ESP: No such file or "
            "directory");
  RunResult no_default;
  no_default.entries = 1;
  no_default.default_failure = "nixos-generation-2";
  EXPECT_EQ(run_summary(no_default),
            "error: nixos-generation-2, the default boot entry, got no Xen entry; no change (1 Xen "
            "entry)");
}

TEST(Watch, JournalStreamMustNameStderrsDeviceAndInode) {
  EXPECT_TRUE(is_journal_stream("8:1234", 8, 1234));
  EXPECT_FALSE(is_journal_stream(nullptr, 8, 1234));
  EXPECT_FALSE(is_journal_stream("8:1235", 8, 1234));
  EXPECT_FALSE(is_journal_stream("9:1234", 8, 1234));
  for (const char* odd : {"", "8", "8:", ":1234", "8:1234x", "8:1234:5", "x8:1234", "-8:1234"}) {
    EXPECT_FALSE(is_journal_stream(odd, 8, 1234)) << odd;
  }
}

}  // namespace
}  // namespace xbb
