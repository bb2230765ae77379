#pragma once

#include <optional>
#include <string>
#include <vector>

#include "xbb/generation.hpp"
#include "xbb/layout.hpp"
#include "xbb/plan.hpp"

namespace xbb {

struct PlanOptions {
  bool retarget_default = true;      // false: --no-default, loader.conf is left alone
  layout::Request layout;            // --layout (auto by default), and what else decides it
  bool keep_debug_sections = false;  // --keep-debug-sections
  std::optional<HostFile> ucode;     // --ucode: microcode a self-contained image embeds
  std::string signer;                // Signer::identity() of --sign-key/--sign-cert; "": unsigned
  // --lanzaboote: EFI/nixos belongs to Lanzaboote, which deletes what it
  // did not write; the shell script's images there are not ours to remove.
  bool lanzaboote = false;
  // --rebuild: every image is written again, whatever the ESP holds.
  bool rebuild = false;
  // Planned::notes are made (only a run at the debug verbosity says them);
  // false leaves them empty.
  bool notes = true;
};

// What a run makes of one generation: what `list` shows.
struct GenerationOutcome {
  enum class Status {
    xen_entry,  // it has its Xen entry after the run
    no_xen,     // its bootspec has no Xen extension
    skipped,    // it could not get its Xen entry (see `reason`); an existing one is kept
  };
  std::string label;   // "nixos-<rest>"
  std::string source;  // where it was found
  std::optional<unsigned> number;
  Status status = Status::no_xen;
  std::string reason;  // why it has no (new) Xen entry; "" for xen_entry
  // Its Xen entry after the run ("loader/entries/xen-<rest>.conf"), planned
  // or, for a skipped generation, the one kept; and the ESP files it uses
  // (its image, and its configuration file in the shared layout).
  std::optional<std::string> entry;
  std::vector<std::string> files;
  std::string xen_efi;  // the xen.efi its bootspec names ("" without one)
  // The layout of its new entry's image (layout::kind_name) and why it got
  // that one; "" unless planned (status xen_entry).
  std::string layout;
  std::string layout_reason;
  bool is_default = false;  // systemd-boot boots it when nobody picks an entry
  bool installed = false;   // its entry and files are on the ESP already: nothing to write for it
};

// The plan and what the user should hear about it.
struct Planned {
  Plan plan;
  std::vector<GenerationOutcome> generations;  // one per generation, in the order given
  std::vector<std::string> warnings;           // one line each, naming the generation
  std::vector<std::string> notes;              // every decision, for the debug verbosity
  // The generation systemd-boot boots by default, when it could not get its
  // Xen entry: the run must fail.
  std::optional<std::string> default_failure;
};

// Decides everything a run does, without touching any file: which Xen
// entries, images and configuration files to write (with their exact
// contents or recipes) in the layout asked for, which stale files to remove,
// and the loader.conf edit. Texts are planned only when they differ from the
// ESP's; images only when the record does not vouch for them (see
// record.hpp), and then with the digest of what they replace (with
// `rebuild`: every image, with no digest, so that each is written). Switching
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
