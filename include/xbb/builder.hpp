#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "xbb/error.hpp"
#include "xbb/generation.hpp"
#include "xbb/layout.hpp"
#include "xbb/plan.hpp"
#include "xbb/planner.hpp"
#include "xbb/report.hpp"
#include "xbb/signer.hpp"

namespace xbb {

struct BuildOptions {
  std::filesystem::path esp = "/boot";
  std::filesystem::path root = "/";  // where /nix lives
  Source source = Source::entries;
  bool retarget_default = true;                // false: --no-default
  bool dry_run = false;                        // `plan`: say what would change, write nothing
  std::optional<layout::Kind> layout;          // --layout; nullopt: auto
  bool keep_debug_sections = false;            // --keep-debug-sections
  std::optional<std::filesystem::path> ucode;  // --ucode (host path)
  // --lanzaboote: the sort key of Lanzaboote's entries (its bootspec
  // extension's, "lanza" by default), nothing written in its folders.
  bool lanzaboote = false;
  // --sign-key, --sign-cert: images are signed and checked before they go
  // into place.
  std::optional<std::filesystem::path> sign_key;
  std::optional<std::filesystem::path> sign_cert;
  // --helper-timeout: how long the initrd secrets tool, sbsign and sbverify
  // may each take before they are killed.
  std::chrono::seconds helper_timeout = kDefaultHelperTimeout;
  // --rebuild: the record is not used and every image is written again.
  bool rebuild = false;
  // --xbootldr: the Extended Boot Loader partition, which holds the entries,
  // kernels and Xen files instead of the ESP (see Partitions).
  std::optional<std::filesystem::path> xbootldr;
  // --extra-esp: more ESPs (mirrors) that get the same Xen entries and
  // images, one after the other, after the main one.
  std::vector<std::filesystem::path> extra_esps;
};

// An extra ESP the run could not update, and why (the others are updated).
struct PartitionFailure {
  std::string esp;
  ErrorKind kind = ErrorKind::failed;
  std::string message;
};

// What one run did, for the one-shot command and the daemon alike.
struct RunResult {
  std::vector<Change> changes;        // done, or for `plan` to be done
  std::vector<std::string> warnings;  // one line each
  // ESP paths whose bytes changed, and removed. For `plan`: the paths it
  // would write (an image may then turn out equal to the file it replaces,
  // and is not written) and remove.
  std::vector<std::string> written;
  std::vector<std::string> removed;
  std::size_t entries = 0;        // generations with a Xen entry after the run (built or kept)
  std::size_t entries_built = 0;  // of them, those whose entry the run planned (not kept)
  std::vector<GenerationOutcome> generations;  // what became of each generation found
  // The generation systemd-boot boots by default, when it got no Xen entry.
  std::optional<std::string> default_failure;
  std::vector<PartitionFailure> partition_failures;  // extra ESPs not updated
  // Why the run stopped before its end (the ESP is then unchanged or consistent).
  std::optional<ErrorKind> error;
  std::string error_message;

  // 0, or 1 when the run stopped, an extra ESP could not be updated or the
  // default generation got no Xen entry.
  int exit_status() const;
};

// What decides the layout of each entry: --layout, signing, the source.
layout::Request layout_request(const BuildOptions& options);

// The whole job: discover generations, plan, apply (unless dry_run). Says
// what it does through `reporter` as it goes (progress, warnings, changes at
// the verbosity asked for) and returns what happened.
RunResult run_build(const BuildOptions& options, Reporter& reporter);

// For the one-shot commands: SIGTERM, SIGINT and SIGHUP are blocked from now
// on, so that they stop a run only where it can stop cleanly: with the
// current file finished or abandoned, the temporaries removed, the program
// it runs killed with its group; the run then fails with "stopped by
// SIGTERM". Never undone: the process ends after the run.
void defer_stop_signals();

}  // namespace xbb
