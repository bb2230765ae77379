#pragma once

#include <optional>
#include <string>
#include <vector>

#include "xbb/generation.hpp"
#include "xbb/layout.hpp"
#include "xbb/plan.hpp"

namespace xbb {

struct PlanOptions {
  bool retarget_default = true;  // false: --no-default, loader.conf is left alone
  layout::Kind layout = layout::Kind::unified;
  bool keep_debug_sections = false;  // --keep-debug-sections
  std::optional<HostFile> ucode;     // --ucode: microcode a self-contained image embeds
  std::string signer;                // Signer::identity() of --sign-key/--sign-cert; "": unsigned
  // --lanzaboote: EFI/nixos belongs to Lanzaboote, which deletes what it
  // did not write; the shell script's images there are not ours to remove.
  bool lanzaboote = false;
};

// The plan and what the user should hear about it.
struct Planned {
  Plan plan;
  std::vector<std::string> warnings;  // one line each, naming the generation
  std::vector<std::string> notes;     // every decision, for the debug verbosity
  // The generations that have their Xen entry after the plan is applied
  // (written or already as it should be).
  std::size_t xen_entries = 0;
  // The generation systemd-boot boots by default, when it could not get its
  // Xen entry: the run must fail.
  std::optional<std::string> default_failure;
};

// Decides everything a run does, without touching any file: which Xen
// entries, images and configuration files to write (with their exact
// contents or recipes) in the layout asked for, which stale files to remove,
// and the loader.conf edit. Texts are planned only when they differ from the
// ESP's; images only when the record does not vouch for them (see
// record.hpp), and then with the digest of what they replace. Switching
// layouts is one plan: the new files are written before the entries that
// name them, and the old ones removed last.
//
// A generation gets no Xen entry, with a warning naming it and the reason,
// when its bootspec could not be read, when its name cannot be mirrored, or
// when its configuration would not boot (boot_problems, the rules `verify`
// applies); its existing Xen entry and image then stay as they are.
//
// The default generation is the one systemd-boot picks with loader.conf's
// `preferred` (when it selects an entry), else `default`, else the first
// entry of its menu (see boot_menu.hpp). A `default`/`preferred` value naming
// nixos-X (or a glob) becomes xen-X only when systemd-boot would then pick
// the Xen entry of the generation it picks now.
Planned make_plan(const std::vector<Generation>& generations, const EspState& state,
                  const PlanOptions& options);

}  // namespace xbb
