#pragma once

#include <filesystem>

#include "xbb/generation.hpp"
#include "xbb/report.hpp"

namespace xbb {

struct BuildOptions {
  std::filesystem::path esp = "/boot";
  std::filesystem::path root = "/";  // where /nix lives
  Source source = Source::entries;
  bool retarget_default = true;      // false: --no-default
  bool dry_run = false;              // `plan`: say what would change, write nothing
};

// The whole job: discover generations, plan, apply (unless dry_run), report.
// Returns the exit status: 0, or 1 when the default generation got no Xen
// entry or the ESP could not be updated (it is then unchanged or consistent).
int run_build(const BuildOptions& options, Reporter& reporter);

}  // namespace xbb
