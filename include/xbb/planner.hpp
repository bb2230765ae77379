#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xbb/generation.hpp"
#include "xbb/plan.hpp"

namespace xbb {

struct PlanOptions {
  bool retarget_default = true;  // false: --no-default, loader.conf is left alone
};

// The plan and what the user should hear about it.
struct Planned {
  Plan plan;
  std::vector<std::string> warnings;  // one line each, naming the generation
  std::vector<std::string> notes;     // every decision, for the debug verbosity
  // The generation systemd-boot boots by default, when it could not get its
  // Xen entry: the run must fail.
  std::optional<std::string> default_failure;
};

// Decides everything a run does, without touching any file: which Xen
// entries and images to write (with their exact contents or recipes), which
// stale files to remove, and the loader.conf edit. `image_configs` maps the
// existing images in `state` ("EFI/xen/x.efi") to their embedded .config, to
// tell changed entries from unchanged ones.
Planned make_plan(const std::vector<Generation>& generations, const EspState& state,
                  const std::map<std::string, std::string>& image_configs,
                  const PlanOptions& options);

}  // namespace xbb
