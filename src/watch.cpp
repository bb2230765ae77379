#include "xbb/watch.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>

#include "shared_library.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/unique_fd.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFirstBackoff{1000};
constexpr milliseconds kMaxBackoff{5 * 60 * 1000};

// Every watched folder gets the same mask: its entries created, removed,
// renamed or written, and the folder itself removed or renamed.
constexpr std::uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                     IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

// One line at a time on stderr, with a journald priority prefix when stderr
// is the journal.
class Log {
 public:
  explicit Log(bool journal) : journal_(journal) {}

  void write(int priority, const std::string& line) {
    if (journal_) std::cerr << '<' << priority << '>';
    std::cerr << line << '\n' << std::flush;
  }

 private:
  bool journal_;
};

bool stderr_is_journal() {
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return is_journal_stream(std::getenv("JOURNAL_STREAM"), st.st_dev, st.st_ino);
}

// What a run says while it goes: its warnings (the wait for the ESP lock
// among them) and, at debug, every step, as log lines. Its progress, changes
// and errors are left to the line the daemon logs after the run.
class LogReporter : public Reporter {
 public:
  LogReporter(Verbosity verbosity, Log& log)
      : Reporter(verbosity, std::cerr, std::cerr, false, false), log_(log) {}

  void debug(const std::string& line) override {
    if (at_least(Verbosity::debug) && !line.empty()) log_.write(LOG_DEBUG, line);
  }
  void info(const std::string&) override {}
  void progress(const std::string&) override {}
  void line(const std::string&) override {}
  void change(char, const std::string&, const std::string&) override {}
  void warning(const std::string& line) override {
    if (at_least(Verbosity::normal)) log_.write(LOG_WARNING, "warning: " + line);
  }
  void error(const std::string&) override {}

 private:
  Log& log_;
};

// A folder to watch and the folders on the way to it: path[0] is expected to
// exist (the root, or the ESP's parent), path.back() is the folder itself.
struct Chain {
  WatchedFolder folder;
  std::vector<fs::path> path;
};

Chain chain_to(WatchedFolder folder, const fs::path& anchor, const fs::path& relative) {
  Chain chain{folder, {anchor}};
  for (const auto& component : relative) chain.path.push_back(chain.path.back() / component);
  return chain;
}

fs::path absolute_folder(const fs::path& path) {
  fs::path folder = fs::absolute(path).lexically_normal();
  if (folder.filename().empty() && folder.has_relative_path()) folder = folder.parent_path();
  return folder;
}

// systemd-boot's entries are on the XBOOTLDR partition when there is one.
std::vector<Chain> chains_for(const BuildOptions& options) {
  const fs::path root = absolute_folder(options.root);
  const fs::path boot = absolute_folder(options.xbootldr.value_or(options.esp));
  const fs::path boot_parent = boot.has_relative_path() ? boot.parent_path() : boot;
  return {
      chain_to(WatchedFolder::profiles, root, "nix/var/nix/profiles"),
      chain_to(WatchedFolder::system_profiles, root, "nix/var/nix/profiles/system-profiles"),
      chain_to(WatchedFolder::entries, boot_parent,
               boot.lexically_relative(boot_parent) / layout::kEntriesFolder),
  };
}

// The inotify watches along every chain, as far as its folders exist.
class Watches {
 public:
  Watches(int fd, std::vector<Chain> chains) : fd_(fd), chains_(std::move(chains)) {}

  // (Re)adds the watches: a folder removed, renamed or mounted over is
  // watched again where its path now leads, one that appeared is watched.
  // Returns whether a watched folder appeared, went or was replaced since
  // the last call.
  bool resolve() {
    std::map<int, std::vector<Role>> roles;
    std::vector<std::optional<std::pair<dev_t, ino_t>>> targets(chains_.size());
    for (std::size_t c = 0; c < chains_.size(); ++c) {
      const auto& path = chains_[c].path;
      for (std::size_t depth = 0; depth < path.size(); ++depth) {
        const int wd = ::inotify_add_watch(fd_, path[depth].c_str(), kWatchMask);
        if (wd < 0) break;  // absent: the watch on its parent tells when it appears
        roles[wd].push_back({c, depth});
        struct stat st {};
        if (depth + 1 == path.size() && ::stat(path[depth].c_str(), &st) == 0) {
          targets[c] = std::make_pair(st.st_dev, st.st_ino);
        }
      }
    }
    for (const auto& [wd, unused] : roles_) {
      if (!roles.count(wd)) ::inotify_rm_watch(fd_, wd);
    }
    const bool changed = targets != targets_;
    roles_ = std::move(roles);
    targets_ = std::move(targets);
    return changed;
  }

  // What one event means.
  struct Meaning {
    bool run = false;      // a watched folder's content changed
    bool resolve = false;  // a folder on the way to one appeared, went or moved
  };

  Meaning meaning(const struct inotify_event& event) const {
    if (event.mask & IN_Q_OVERFLOW) return {true, true};
    auto found = roles_.find(event.wd);
    if (found == roles_.end()) return {};
    Meaning meaning;
    const bool self = event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT);
    const std::string_view name = event.len ? std::string_view(event.name) : std::string_view();
    for (const Role& role : found->second) {
      const Chain& chain = chains_[role.chain];
      if (self) {
        meaning.resolve = true;
      } else if (role.depth + 1 == chain.path.size()) {
        meaning.run |= !name.empty() && calls_for_run(chain.folder, name);
      } else if (name == chain.path[role.depth + 1].filename().native()) {
        meaning.resolve = true;
      }
    }
    return meaning;
  }

  std::vector<std::string> watched() const {
    std::vector<std::string> folders;
    for (std::size_t c = 0; c < chains_.size(); ++c) {
      folders.push_back(chains_[c].path.back().string() + (targets_[c] ? "" : " (absent)"));
    }
    return folders;
  }

 private:
  struct Role {
    std::size_t chain;
    std::size_t depth;
  };
  int fd_;
  std::vector<Chain> chains_;
  std::map<int, std::vector<Role>> roles_;  // by watch descriptor
  std::vector<std::optional<std::pair<dev_t, ino_t>>> targets_;
};

// libsystemd's functions for a daemon, loaded when the daemon starts: the
// other commands never load libsystemd. XBB_LIBSYSTEMD is its path
// (CMakeLists.txt).
struct SdDaemon {
  decltype(&::sd_notify) notify;
  decltype(&::sd_watchdog_enabled) watchdog_enabled;
};

const SdDaemon& sd_daemon() {
  static const SdDaemon functions = [] {
    const SharedLibrary library("libsystemd", XBB_LIBSYSTEMD);
    return SdDaemon{XBB_LIBRARY_FUNCTION(library, sd_notify),
                    XBB_LIBRARY_FUNCTION(library, sd_watchdog_enabled)};
  }();
  return functions;
}

// systemd's watchdog, when it watches this process (WATCHDOG_USEC): pinged
// at half its interval.
class Watchdog {
 public:
  explicit Watchdog(const SdDaemon& systemd) : notify_(systemd.notify) {
    std::uint64_t usec = 0;
    if (systemd.watchdog_enabled(0, &usec) > 0) {
      interval_ = std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(usec / 2));
    }
  }

  bool enabled() const { return interval_ > Clock::duration::zero(); }
  Clock::duration interval() const { return interval_; }
  decltype(&::sd_notify) notify() const { return notify_; }

  void ping() {
    if (!enabled()) return;
    notify_(0, "WATCHDOG=1");
    last_ = Clock::now();
  }
  void ping_if_due(Clock::time_point now) {
    if (enabled() && now >= last_ + interval_) ping();
  }
  std::optional<Clock::time_point> next() const {
    if (!enabled()) return std::nullopt;
    return last_ + interval_;
  }

 private:
  decltype(&::sd_notify) notify_;
  Clock::duration interval_ = Clock::duration::zero();
  Clock::time_point last_ = Clock::now();
};

// Pings the watchdog from a second thread while a run goes on, for at most
// kRunLimit: the event loop, which pings otherwise, waits for the run.
class RunPinger {
 public:
  explicit RunPinger(const Watchdog& watchdog) {
    if (!watchdog.enabled()) return;
    const Clock::duration interval = watchdog.interval();
    const Clock::time_point deadline = Clock::now() + kRunLimit;
    thread_ = std::jthread([notify = watchdog.notify(), interval, deadline](std::stop_token stop) {
      std::mutex mutex;
      std::condition_variable_any wake;
      std::unique_lock lock(mutex);
      while (!wake.wait_for(lock, stop, interval, [] { return false; })) {
        if (stop.stop_requested() || Clock::now() > deadline) return;
        notify(0, "WATCHDOG=1");
      }
    });
  }

 private:
  std::jthread thread_;
};

std::string seconds_text(milliseconds wait) {
  const auto count = std::chrono::duration_cast<std::chrono::seconds>(wait).count();
  return std::to_string(count) + " s";
}

// A build on a folder without loader/ (systemd-boot's installer made it on
// the ESP) would write into whatever file system holds the mount point: an
// ESP that is not mounted. The daemon, which builds whenever the mount table
// changes, waits for it instead.
// The same holds for the XBOOTLDR partition.
RunResult build_on_esp(const BuildOptions& options, Reporter& reporter) {
  std::vector<std::pair<fs::path, std::string>> partitions{{options.esp, "ESP"}};
  if (options.xbootldr) partitions.emplace_back(*options.xbootldr, "XBOOTLDR partition");
  for (const auto& [partition, what] : partitions) {
    std::error_code error;
    if (fs::is_directory(partition, error) && !fs::is_directory(partition / "loader", error)) {
      RunResult refused;
      refused.error = ErrorKind::esp_missing;
      refused.error_message = partition.string() + ": no loader/ folder: not an " + what +
                              ", or the " + what + " is not mounted";
      return refused;
    }
  }
  return run_build(options, reporter);
}

// Logs what failed with the error number it gave (errno, or what a
// pthread call returned) and returns 1.
int fail(Log& log, const std::string& what, int error) {
  log.write(LOG_ERR, "error: watch: " + what + ": " + std::strerror(error));
  return 1;
}

}  // namespace

bool calls_for_run(WatchedFolder folder, std::string_view name) {
  switch (folder) {
    case WatchedFolder::profiles:
      return name.starts_with("system");
    case WatchedFolder::system_profiles:
      return true;
    case WatchedFolder::entries:
      break;
  }
  return !name.starts_with("xen-") && name.find(Esp::temporary_marker) == std::string_view::npos;
}

Clock::time_point build_due(Clock::time_point now, Clock::time_point pending_since,
                            milliseconds debounce, milliseconds debounce_max) {
  return std::min(now + debounce, std::max(now, pending_since + debounce_max));
}

milliseconds next_backoff(milliseconds previous) {
  if (previous < kFirstBackoff) return kFirstBackoff;
  return std::min(previous * 2, kMaxBackoff);
}

std::string run_summary(const RunResult& result) {
  const std::string entries = std::string("(")
                                  .append(std::to_string(result.entries))
                                  .append(result.entries == 1 ? " Xen entry)" : " Xen entries)");
  if (result.error) {
    return std::string("error: run failed (") + kind_name(*result.error) +
           "): " + result.error_message;
  }
  std::size_t added = 0, removed = 0, changed = 0;
  std::string names;
  for (const auto& change : result.changes) {
    (change.kind == '+' ? added : change.kind == '-' ? removed : changed) += 1;
    names.append(" ").append(1, change.kind).append(change.name);
    if (!change.detail.empty()) names.append(" (").append(change.detail).append(")");
  }
  std::string counts;
  for (const auto& [count, word] :
       {std::pair{added, "added"}, std::pair{removed, "removed"}, std::pair{changed, "changed"}}) {
    if (count) counts += (counts.empty() ? "" : ", ") + std::to_string(count) + " " + word;
  }
  std::string line = counts.empty() ? "no change " + entries : counts + ":" + names + " " + entries;
  if (result.default_failure) {
    line =
        "error: " + *result.default_failure + ", the default boot entry, got no Xen entry; " + line;
  }
  return line;
}

bool is_journal_stream(const char* journal_stream, dev_t device, ino_t inode) {
  if (journal_stream == nullptr) return false;
  const std::string_view text(journal_stream);
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  unsigned long long dev = 0, ino = 0;
  const char* end = text.data() + text.size();
  auto [dev_end, dev_error] = std::from_chars(text.data(), text.data() + colon, dev);
  auto [ino_end, ino_error] = std::from_chars(text.data() + colon + 1, end, ino);
  if (dev_error != std::errc() || dev_end != text.data() + colon || ino_error != std::errc() ||
      ino_end != end || colon == 0 || colon + 1 == text.size()) {
    return false;
  }
  return dev == device && ino == inode;
}

namespace {

// The event loop: builds when due, and waits for signals, changes, the due
// time and the watchdog.
class Daemon {
 public:
  Daemon(const WatchOptions& options, Log& log, const SdDaemon& systemd, UniqueFd signals,
         UniqueFd inotify, UniqueFd mounts)
      : options_(options),
        log_(log),
        systemd_(systemd),
        signals_(std::move(signals)),
        inotify_(std::move(inotify)),
        mounts_(std::move(mounts)),
        watches_(inotify_.get(), chains_for(options.build)),
        watchdog_(systemd),
        reporter_(options.verbosity, log) {
    watches_.resolve();
    if (options_.verbosity >= Verbosity::info) {
      std::string folders;
      for (const auto& folder : watches_.watched())
        folders += (folders.empty() ? "" : ", ") + folder;
      log_.write(LOG_INFO, "watching " + folders);
    }
  }

  // Until SIGTERM or SIGINT; returns 0 then, 1 when poll() fails.
  int run() {
    while (!stop_signal_) {
      if (due_ && Clock::now() >= *due_) {
        build();
      } else if (int error = wait()) {
        return fail(log_, "poll", error);
      }
    }
    systemd_.notify(0, "STOPPING=1");
    if (options_.verbosity >= Verbosity::normal) {
      log_.write(LOG_INFO, *stop_signal_ == SIGINT ? "stopping on SIGINT" : "stopping on SIGTERM");
    }
    return 0;
  }

 private:
  // One build, its line and STATUS=, and the next try after a failure.
  void build() {
    due_.reset();
    pending_since_.reset();
    at_once_ = false;
    RunResult result;
    {
      watchdog_.ping();
      RunPinger pinger(watchdog_);
      result = build_on_esp(options_.build, reporter_);
    }
    watchdog_.ping();
    std::string summary = run_summary(result);
    if (result.error) {
      backoff_ = next_backoff(backoff_);
      due_ = Clock::now() + backoff_;
      summary += "; next try in " + seconds_text(backoff_);
    } else {
      backoff_ = milliseconds(0);
    }
    const bool failed = result.exit_status() != 0;
    if (failed || options_.verbosity >= Verbosity::normal)
      log_.write(failed ? LOG_ERR : LOG_INFO, summary);
    systemd_.notify(0, ((ready_ ? "" : "READY=1\n") + ("STATUS=" + summary)).c_str());
    ready_ = true;
    // The build may have made a watched folder (loader/entries).
    if (watches_.resolve() && !due_) note_change(Clock::now());
  }

  // Waits for a signal, a change, the due time or the next watchdog ping,
  // and takes in what came. 0, or poll()'s errno when it fails.
  int wait() {
    const Clock::time_point now = Clock::now();
    std::optional<Clock::time_point> wake = due_;
    if (auto ping = watchdog_.next(); ping && (!wake || *ping < *wake)) wake = ping;
    int timeout = -1;
    if (wake) {
      const auto wait = std::chrono::ceil<milliseconds>(*wake - now).count();
      timeout = static_cast<int>(std::clamp<long long>(wait, 0, 1 << 30));
    }
    struct pollfd fds[3] = {
        {signals_.get(), POLLIN, 0}, {inotify_.get(), POLLIN, 0}, {mounts_.get(), POLLPRI, 0}};
    if (::poll(fds, 3, timeout) < 0 && errno != EINTR) return errno;
    const Clock::time_point woke = Clock::now();
    watchdog_.ping_if_due(woke);
    if (fds[0].revents & POLLIN) read_signals(woke);
    bool changed = false;
    if (fds[1].revents & POLLIN) changed |= read_changes();
    // The mount table changed: the ESP may have been mounted or unmounted.
    if (fds[2].revents & (POLLPRI | POLLERR)) changed |= watches_.resolve();
    if (changed && !at_once_) note_change(woke);
    return 0;
  }

  // A quiet period starts again with each change, up to debounce_max after
  // the first one not yet built.
  void note_change(Clock::time_point now) {
    if (!pending_since_) pending_since_ = now;
    due_ = build_due(now, *pending_since_, options_.debounce, options_.debounce_max);
  }

  void read_signals(Clock::time_point now) {
    struct signalfd_siginfo info {};
    while (::read(signals_.get(), &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGHUP) {
        due_ = now;
        at_once_ = true;
      } else {
        stop_signal_ = static_cast<int>(info.ssi_signo);
      }
    }
  }

  // Reads every inotify event queued; whether they call for a build.
  bool read_changes() {
    alignas(struct inotify_event) char buffer[64 * 1024];
    bool run = false;
    bool resolve = false;
    for (;;) {
      const ssize_t size = ::read(inotify_.get(), buffer, sizeof buffer);
      if (size <= 0) break;
      for (ssize_t offset = 0; offset < size;) {
        const auto* event = reinterpret_cast<const struct inotify_event*>(buffer + offset);
        const Watches::Meaning meaning = watches_.meaning(*event);
        run |= meaning.run;
        resolve |= meaning.resolve;
        offset += static_cast<ssize_t>(sizeof(struct inotify_event) + event->len);
      }
    }
    if (resolve) run |= watches_.resolve();
    return run;
  }

  const WatchOptions& options_;
  Log& log_;
  const SdDaemon& systemd_;
  UniqueFd signals_;
  UniqueFd inotify_;
  UniqueFd mounts_;
  Watches watches_;
  Watchdog watchdog_;
  LogReporter reporter_;
  std::optional<Clock::time_point> due_ = Clock::now();  // the first build, at once
  bool at_once_ = true;                                  // due_ was set by the start or SIGHUP
  std::optional<Clock::time_point> pending_since_;       // the first change not yet built
  milliseconds backoff_{0};
  bool ready_ = false;
  std::optional<int> stop_signal_;
};

}  // namespace

int watch(const WatchOptions& options) {
  Log log(stderr_is_journal());
  const SdDaemon* systemd = nullptr;
  try {
    systemd = &sd_daemon();
  } catch (const Error& e) {
    log.write(LOG_ERR, std::string("error: watch: ") + e.what());
    return 1;
  }
  // Signals are read from a descriptor in the loop; the second thread
  // inherits the mask, so it never takes one.
  sigset_t signals;
  sigemptyset(&signals);
  for (int signal : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, signal);
  // pthread_sigmask returns its error; it does not set errno.
  if (int error = ::pthread_sigmask(SIG_BLOCK, &signals, nullptr))
    return fail(log, "blocking signals", error);
  UniqueFd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd) return fail(log, "signalfd", errno);
  UniqueFd inotify(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!inotify) return fail(log, "inotify_init1", errno);
  // A change of the mount table makes it readable with POLLPRI.
  UniqueFd mounts(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
  if (!mounts) {
    log.write(LOG_WARNING, std::string("warning: /proc/self/mountinfo: ") + std::strerror(errno) +
                               "; a remounted ESP is noticed only with the next change");
  }
  return Daemon(options, log, *systemd, std::move(signal_fd), std::move(inotify), std::move(mounts))
      .run();
}

}  // namespace xbb
