#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>

#include "xbb/builder.hpp"
#include "xbb/report.hpp"

// `xen-boot-builder watch`: the daemon. It keeps the Xen entries in step with
// the NixOS generations by running the same build as the one-shot command
// whenever they may have changed.
namespace xbb {

struct WatchOptions {
  BuildOptions build;
  Verbosity verbosity = Verbosity::normal;
  // How long nothing must change before a run starts (--debounce).
  std::chrono::milliseconds debounce{2000};
  // The longest a build waits after the first change not yet built, however
  // long changes go on (--debounce-max).
  std::chrono::milliseconds debounce_max{30000};
};

// Watches, with inotify, <root>/nix/var/nix/profiles, its system-profiles/
// and <esp>/loader/entries, and every folder on the way to them from <root>
// and from the ESP's parent, so that a folder created later, removed and made
// again, or replaced by a mount (a change of /proc/self/mountinfo) is watched
// again. Runs a build at start, then whenever a change there calls for one
// (calls_for_run) and nothing changed for `debounce`, or `debounce_max` after
// the first change when changes go on (build_due); at once on SIGHUP. An
// ESP folder without loader/ (not mounted) is not built on: the run fails
// with esp_missing.
// Logs one line per run on stderr (run_summary), with journald priority
// prefixes when stderr is the journal, and tells systemd (sd_notify):
// READY=1 after the first run, STATUS= after each, WATCHDOG=1 at half the
// watchdog interval, also from a second thread during a run (which may wait
// 60 s for the ESP lock) for up to kRunLimit. A failed run is retried after
// next_backoff. SIGTERM or SIGINT: the run under way finishes, then it
// returns 0. Returns 1 when it cannot watch at all.
int watch(const WatchOptions& options);

// How long a run may take before the watchdog pings stop (and systemd, when
// it watches, restarts the daemon).
inline constexpr std::chrono::minutes kRunLimit{15};

// The folders watched for changes.
enum class WatchedFolder { profiles, system_profiles, entries };

// Whether a change to `name` in the folder calls for a run: in profiles, the
// system profile's links (system, system-<N>-link; other profiles live
// there too); in system-profiles, any; in loader/entries, any but the Xen
// entries the daemon writes itself and their temporaries.
bool calls_for_run(WatchedFolder folder, std::string_view name);

// When a build is due after a change at `now`: once nothing has changed for
// `debounce`, but no later than `debounce_max` after `pending_since`, the
// first change since the last build.
std::chrono::steady_clock::time_point build_due(std::chrono::steady_clock::time_point now,
                                                std::chrono::steady_clock::time_point pending_since,
                                                std::chrono::milliseconds debounce,
                                                std::chrono::milliseconds debounce_max);

// The wait before retrying after a failed run, given the previous one (zero
// after a success): 1 s, then doubling, at most 5 min.
std::chrono::milliseconds next_backoff(std::chrono::milliseconds previous);

// The line logged (and sent as STATUS=) after a run: "no change (N Xen
// entries)", "2 added, 1 removed: +xen-a +xen-b -xen-c (N Xen entries)",
// or, starting with "error: ", the default generation that got no Xen
// entry, or the kind and message of the error that stopped the run.
std::string run_summary(const RunResult& result);

// Whether $JOURNAL_STREAM ("<device>:<inode>", set by systemd) names the
// file that stderr is: then log lines get priority prefixes ("<6>").
bool is_journal_stream(const char* journal_stream, dev_t device, ino_t inode);

}  // namespace xbb
