#include "xbb/planner.hpp"

#include <algorithm>
#include <set>

#include "xbb/boot_menu.hpp"
#include "xbb/error.hpp"
#include "xbb/layout.hpp"
#include "xbb/loader_conf.hpp"
#include "xbb/xen_config.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

const std::string kConfigSection = "nixos";

// One Xen entry that is to exist after the run.
struct Target {
  const Generation* generation = nullptr;
  std::string stem;  // "xen-<rest>"
  layout::Choice layout;
  std::string entry_path;
  LoaderEntry entry;
  std::string entry_text;
  layout::EntryFiles files;
  std::string config_text;
};

std::string label(const Generation& generation) { return "nixos-" + generation.rest; }

std::string file_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

const layout::Policy& policy_of(const Target& target) { return layout::policy(target.layout.kind); }

XenConfig xen_config_for(const Generation& generation, const layout::Policy& policy,
                         std::vector<std::string>& warnings) {
  const Bootspec& spec = *generation.bootspec;
  XenConfig config;
  config.section = kConfigSection;
  config.xen_params = spec.xen->params;
  config.kernel_params.push_back("init=" + spec.init);
  config.kernel_params.insert(config.kernel_params.end(), spec.kernel_params.begin(),
                              spec.kernel_params.end());
  if (policy.embeds_kernel) {
    // The kernel= line stays: it carries dom0's command line. Its file name
    // is not opened, the embedded .kernel section is used instead.
    config.kernel = fs::path(spec.kernel).filename().string();
    return config;
  }
  const LoaderEntry& entry = generation.entry;
  if (!entry.kernel) throw Error(generation.source, "no linux line");
  config.kernel = xen_file_name(*entry.kernel);
  if (!entry.initrds.empty()) config.ramdisk = xen_file_name(entry.initrds.front());
  if (entry.initrds.size() > 1) {
    std::string ignored;
    for (std::size_t i = 1; i < entry.initrds.size(); ++i) ignored += " " + entry.initrds[i];
    warnings.push_back(label(generation) + ": Xen loads a single ramdisk; ignoring initrd" +
                       ignored);
  }
  return config;
}

// Refuses a configuration `verify` would call not bootable, with its reasons.
void check_bootable(const Target& target, const EspState& state) {
  const Generation& generation = *target.generation;
  const bool embedded = policy_of(target).embeds_kernel;
  BootFiles files;
  files.image_path = target.files.image;
  files.kernel_embedded = embedded;
  files.ramdisk_embedded = embedded && generation.initrd_file.has_value();
  files.is_file = [&state](const std::string& path) { return state.boot_files.count(path) > 0; };
  auto problems = boot_problems(parse_xen_config(target.config_text, target.files.image), files);
  if (problems.empty()) return;
  std::string reasons;
  for (const auto& problem : problems) reasons += (reasons.empty() ? "" : "; ") + problem;
  throw Error(generation.source, "its Xen configuration would not boot: " + reasons);
}

// The image a target boots: xen.efi with its configuration (and, in the
// self-contained layout, kernel, initrd and microcode) embedded; in the
// shared layout, the plain copy of xen.efi that entries using the same one
// share.
ImageRecipe recipe_for(const Target& target, const PlanOptions& options) {
  const Generation& generation = *target.generation;
  ImageRecipe recipe;
  recipe.xen_efi = generation.xen_efi;
  recipe.drop_debug_sections = !options.keep_debug_sections;
  const layout::Policy& policy = policy_of(target);
  if (!policy.embeds_config) return recipe;
  recipe.signer = options.signer;
  recipe.sections.push_back({".config", target.config_text});
  if (policy.embeds_kernel) {
    recipe.sections.push_back({".kernel", generation.kernel_file});
    if (generation.initrd_file) recipe.sections.push_back({".ramdisk", *generation.initrd_file});
    if (options.ucode) recipe.sections.push_back({".ucode", *options.ucode});
  }
  return recipe;
}

// Why a generation's xen.efi cannot serve the layout chosen, or nullopt.
std::optional<std::string> layout_problem(const Generation& generation,
                                          const layout::Choice& choice) {
  if (!layout::policy(choice.kind).shares_image) return std::nullopt;
  if (generation.xen_has_config) {
    return generation.xen_efi.path +
           ": carries a .config section, which Xen would use instead of the entry's -cfg= "
           "file; the shared layout needs a xen.efi without one";
  }
  return std::nullopt;
}

// An existing Xen entry, by its stem.
struct Existing {
  std::string path;
  const ExistingFile* file = nullptr;
};

// The entry file name: the source's boot counter carries over. An existing
// entry whose content stays the same keeps its current counter; a new or
// changed one starts with all of the source's tries.
std::string entry_path_for(const Target& target, const std::optional<BootCounter>& counter,
                           const std::optional<Existing>& existing) {
  if (counter && existing && existing->file->text == target.entry_text) return existing->path;
  return layout::entry_path(target.stem, counter);
}

// Which fields differ between the existing entry (and its configuration)
// and the target; empty when nothing does. An entry or configuration that
// does not parse differs as a whole ("entry", "xen config"), with why in `notes`.
std::string changed_fields(const Target& target, const Existing& existing, const EspState& state,
                           std::vector<std::string>& notes) {
  const auto note = [&notes](const std::string& why) {
    notes.push_back(why + " (compared as a whole)");
  };
  std::vector<std::string> fields;
  const std::optional<LoaderEntry> old =
      value_or_reason([&] { return parse_loader_entry(existing.file->text, existing.path); }, note);
  if (old) {
    const LoaderEntry& now = target.entry;
    if (old->title != now.title) fields.push_back("title");
    if (old->version != now.version) fields.push_back("version");
    if (old->machine_id != now.machine_id) fields.push_back("machine-id");
    if (old->sort_key != now.sort_key) fields.push_back("sort-key");
    if (old->efi != now.efi) fields.push_back("efi");
    if (old->options != now.options) fields.push_back("options");
  } else {
    fields.push_back("entry");
  }
  const std::string& config_path = target.files.config ? *target.files.config : target.files.image;
  auto config = state.xen_images.find(config_path);
  if (config == state.xen_images.end()) {
    if (std::find(fields.begin(), fields.end(), "efi") == fields.end())
      fields.push_back(target.files.config ? "xen config" : "xen image");
  } else if (config->second.text != target.config_text) {
    const auto differing = value_or_reason(
        [&] {
          const auto old_config = parse_xen_config(config->second.text, config_path);
          const auto now_config = parse_xen_config(target.config_text, "plan");
          std::vector<std::string> keys;
          for (const char* key : {"options", "kernel", "ramdisk"}) {
            if (old_config.default_value(key) != now_config.default_value(key))
              keys.push_back(std::string("xen ") + key);
          }
          return keys;
        },
        note);
    if (differing) fields.insert(fields.end(), differing->begin(), differing->end());
    if (fields.empty()) fields.push_back("xen config");
  }
  std::string detail;
  for (const auto& field : fields) detail += (detail.empty() ? "" : ", ") + field;
  return detail;
}

// The source entries as systemd-boot's menu lists them, each with its generation.
struct SourceMenu {
  std::vector<MenuEntry> entries;
  std::vector<const Generation*> generations;
};

SourceMenu source_menu(const std::vector<Generation>& generations) {
  SourceMenu menu;
  menu.entries.reserve(generations.size());
  menu.generations.reserve(generations.size());
  for (const auto& generation : generations) {
    auto name = parse_entry_name(file_name(generation.source));
    if (!name) name = EntryName{label(generation), generation.counter};
    menu.entries.push_back(menu_entry(*name, generation.entry));
    menu.generations.push_back(&generation);
  }
  return menu;
}

// The value of `preferred` when it selects an entry, else of `default`.
std::optional<std::string> default_value(const std::optional<std::string>& loader_conf,
                                         const std::vector<MenuEntry>& menu) {
  if (!loader_conf) return std::nullopt;
  auto preferred = loader_conf_value(*loader_conf, "preferred");
  if (preferred && pick(*preferred, menu)) return preferred;
  return loader_conf_value(*loader_conf, "default");
}

// The source entries and, after them, the existing Xen entries made from
// them (each with the generation it was made from): the entries of
// systemd-boot's menu that lead to a generation. A loader.conf retargeted by
// an earlier run names a Xen entry. An existing Xen entry that does not
// parse is left out, with why in `notes`.
SourceMenu known_menu(const SourceMenu& sources, const std::vector<Generation>& generations,
                      const EspState& state, std::vector<std::string>& notes) {
  SourceMenu menu = sources;
  for (const auto& [path, file] : state.xen_entries) {
    auto name = parse_entry_name(file_name(path));
    if (!name) continue;
    auto made_from = std::find_if(generations.begin(), generations.end(),
                                  [&](const auto& g) { return "xen-" + g.rest == name->stem; });
    if (made_from == generations.end()) continue;
    const std::optional<LoaderEntry> entry = value_or_reason(
        [&text = file.text, &where = path] { return parse_loader_entry(text, where); },
        [&notes](const std::string& why) { notes.push_back(why + " (not in the menu)"); });
    if (!entry) continue;
    menu.entries.push_back(menu_entry(*name, *entry));
    menu.generations.push_back(&*made_from);
  }
  return menu;
}

// The generation systemd-boot boots when nobody picks one.
const Generation* default_generation(const SourceMenu& menu,
                                     const std::optional<std::string>& loader_conf) {
  std::optional<std::size_t> index;
  if (auto value = default_value(loader_conf, menu.entries)) index = pick(*value, menu.entries);
  if (!index) index = first_in_menu(menu.entries);
  return index ? menu.generations[*index] : nullptr;
}

// "default nixos-X" -> "default xen-X" (X a file name, a stem or a glob) when
// systemd-boot would then pick the Xen entry of the generation it picks now.
RetargetFn retarget_to(const SourceMenu& sources, const std::vector<MenuEntry>& xen_menu,
                       const std::vector<std::string>& xen_stems) {
  return [&](std::string_view value) -> std::optional<std::string> {
    if (!value.starts_with("nixos-")) return std::nullopt;
    auto source = pick(value, sources.entries);
    if (!source) return std::nullopt;
    std::string xen = "xen-" + std::string(value.substr(6));
    auto picked = pick(xen, xen_menu);
    if (!picked || xen_stems[*picked] != "xen-" + sources.generations[*source]->rest)
      return std::nullopt;
    return xen;
  };
}

// The Xen version that names each xen.efi's shared image: the version a v2
// bootspec gives for it (a v1 bootspec gives none), the same for every
// generation that uses that xen.efi, so that it gets one image.
std::map<std::string, std::string> xen_versions(const std::vector<Generation>& generations) {
  std::map<std::string, std::string> versions;
  for (const auto& generation : generations) {
    if (!generation.bootspec || !generation.bootspec->xen || !generation.bootspec->xen->version)
      continue;
    versions.emplace(generation.xen_efi.path, *generation.bootspec->xen->version);
  }
  return versions;
}

std::string join_paths(const std::vector<std::string>& paths) {
  std::string joined;
  for (const auto& path : paths) joined += (joined.empty() ? "" : ", ") + path;
  return joined;
}

// The plan a run is making, built in named phases, each deciding one thing
// from what the phases before it decided: choose_targets, plan_writes,
// collect_garbage, retarget_default (make_plan runs them in that order).
struct PlanBuilder {
  PlanBuilder(const std::vector<Generation>& generations, const EspState& state,
              const PlanOptions& options);

  void choose_targets();
  void plan_writes();
  void collect_garbage();
  void retarget_default();

  const std::vector<Generation>& generations;
  const EspState& state;
  const PlanOptions& options;
  Planned out;

  // What the ESP holds and which generation boots by default: read once.
  std::map<std::string, Existing> existing;  // the Xen entries there, by stem
  SourceMenu sources;
  std::optional<std::string> loader_conf;  // the loader.conf text to retarget, if any
  const Generation* by_default = nullptr;

  // choose_targets: the Xen entries to exist after the run, and the
  // generations we could not rebuild, by stem, with their outcome (their
  // Xen entries stay as they are).
  std::vector<Target> targets;
  std::map<std::string, std::size_t> kept;

  // plan_writes and collect_garbage: the files that stay (targets and what
  // kept entries use), and the Xen entries after the run as systemd-boot
  // lists them, each with its stem.
  std::set<std::string> keep_paths;
  std::vector<MenuEntry> xen_menu;
  std::vector<std::string> xen_stems;

 private:
  std::optional<Existing> existing_for(const std::string& stem) const;
  void skip(const Generation& generation, const std::optional<std::string>& stem,
            const std::string& why);
  Target target_for(const Generation& generation, const std::string& stem,
                    const std::map<std::string, std::string>& versions);
  void add_to_menu(const std::string& path, const LoaderEntry& entry);
  void plan_image(Target& target, std::vector<std::string>& replaced_by_hand);
  void write_text(std::vector<FileWrite>& files, const std::string& path, std::string text,
                  const std::map<std::string, ExistingFile>& existing_files,
                  std::vector<std::string>& replaced_by_hand);
  void mark_installed();
};

// A file made by hand at one of the tool's own names is replaced: the entry
// needs that name. Said, since it is the one exception to leaving such files
// alone.
void note_replaced(const std::string& path, const ExistingFile* old,
                   std::vector<std::string>& replaced_by_hand) {
  if (old && old->stamp && !old->ours) replaced_by_hand.push_back(path);
}

const ExistingFile* find_file(const std::map<std::string, ExistingFile>& files,
                              const std::string& path) {
  auto found = files.find(path);
  return found == files.end() ? nullptr : &found->second;
}

// What every phase starts from: the Xen entries the ESP holds, the source
// menu, and the generation systemd-boot boots by default (with loader.conf
// only when the run may retarget it).
PlanBuilder::PlanBuilder(const std::vector<Generation>& generations_, const EspState& state_,
                         const PlanOptions& options_)
    : generations(generations_), state(state_), options(options_) {
  for (const auto& [path, file] : state.xen_entries) {
    if (auto name = parse_entry_name(file_name(path))) existing[name->stem] = {path, &file};
  }
  sources = source_menu(generations);
  loader_conf = options.retarget_default ? state.loader_conf : std::nullopt;
  by_default = default_generation(known_menu(sources, generations, state, out.notes), loader_conf);
}

std::optional<Existing> PlanBuilder::existing_for(const std::string& stem) const {
  auto it = existing.find(stem);
  if (it == existing.end()) return std::nullopt;
  return it->second;
}

void PlanBuilder::skip(const Generation& generation, const std::optional<std::string>& stem,
                       const std::string& why) {
  out.warnings.push_back(label(generation) + ": skipped: " + why);
  out.generations.back().status = GenerationOutcome::Status::skipped;
  out.generations.back().reason = why;
  if (stem) kept[*stem] = out.generations.size() - 1;
  if (&generation == by_default) out.default_failure = label(generation);
}

// Decides which generations get a Xen entry, and for each its layout
// (layout::choose), its files, its configuration and its entry; and the
// outcome of every generation: a Xen entry, none (no Xen extension), or
// skipped (its existing Xen entry is kept) with the reason.
void PlanBuilder::choose_targets() {
  const auto versions = xen_versions(generations);
  out.generations.reserve(generations.size());
  targets.reserve(generations.size());
  for (const auto& generation : generations) {
    GenerationOutcome& outcome = out.generations.emplace_back();
    outcome.label = label(generation);
    outcome.source = generation.source;
    outcome.number = generation.number;
    outcome.is_default = &generation == by_default;
    if (generation.bootspec && generation.bootspec->xen)
      outcome.xen_efi = generation.bootspec->xen->efi_path;
    std::string why;
    const std::optional<std::string> stem = layout::xen_stem(generation.rest, why);
    if (!stem) {
      skip(generation, stem, generation.source + ": " + why);
      continue;
    }
    if (!generation.bootspec) {
      skip(generation, stem, generation.problem);
      continue;
    }
    const Bootspec& spec = *generation.bootspec;
    if (!spec.xen) {
      outcome.reason = "its bootspec has no Xen extension";
      if (options.notes)
        out.notes.push_back(label(generation) + ": " + outcome.reason + ", no Xen entry");
      continue;
    }
    if (spec.devicetree || generation.entry.devicetree) {
      out.warnings.push_back(label(generation) +
                             ": Xen's EFI configuration carries no devicetree; it is left out");
    }
    try {
      Target target = target_for(generation, *stem, versions);
      if (options.notes)
        out.notes.push_back(
            label(generation) + ": Xen (bootspec v" + std::to_string(spec.xen->schema) + ") " +
            spec.xen->efi_path + " -> " + target.entry_path + ", " + target.files.image + " (" +
            layout::kind_name(target.layout.kind) + ": " + target.layout.reason + ")");
      outcome.status = GenerationOutcome::Status::xen_entry;
      outcome.layout = layout::kind_name(target.layout.kind);
      outcome.layout_reason = target.layout.reason;
      outcome.entry = target.entry_path;
      outcome.files = {target.files.image};
      if (target.files.config) outcome.files.push_back(*target.files.config);
      targets.push_back(std::move(target));
    } catch (const Error& e) {
      skip(generation, stem, e.what());
    }
  }
}

// The Xen entry of a generation with a Xen extension; throws Error saying
// why it cannot have one (its xen.efi cannot serve the layout, its
// configuration would not boot).
Target PlanBuilder::target_for(const Generation& generation, const std::string& stem,
                               const std::map<std::string, std::string>& versions) {
  Target target;
  target.generation = &generation;
  target.stem = stem;
  target.layout = layout::choose(options.layout, generation.xen_has_config);
  if (auto problem = layout_problem(generation, target.layout)) throw Error(*problem);
  const auto version = versions.find(generation.xen_efi.path);
  target.files = layout::entry_files(target.layout.kind, target.stem,
                                     version == versions.end() ? "" : version->second,
                                     generation.shared_digest);
  target.config_text =
      render_xen_config(xen_config_for(generation, policy_of(target), out.warnings));
  check_bootable(target, state);
  target.entry.title = generation.entry.title.value_or("NixOS") + " (with Xen Hypervisor)";
  target.entry.version = generation.entry.version;
  target.entry.efi = "/" + target.files.image;
  target.entry.options = target.files.options;
  target.entry.machine_id = generation.entry.machine_id;
  target.entry.sort_key = generation.entry.sort_key;
  target.entry_text = render_loader_entry(target.entry);
  target.entry_path = entry_path_for(target, generation.counter, existing_for(target.stem));
  return target;
}

void PlanBuilder::add_to_menu(const std::string& path, const LoaderEntry& entry) {
  auto name = parse_entry_name(file_name(path));
  if (!name) return;
  xen_menu.push_back(menu_entry(*name, entry));
  xen_stems.push_back(name->stem);
}

// Decides what each target writes: its image (once for the entries that
// share it), its configuration file and its entry, and the change it makes
// to each entry ('+' new, '~' with the fields that differ). A text is
// written only when it differs from what is there; an image only when the
// record does not vouch that it is made from the same recipe (see
// record.hpp), or with --rebuild. Then which generations are installed
// already: nothing to write for their entry and files.
void PlanBuilder::plan_writes() {
  std::vector<std::string> replaced_by_hand;
  xen_menu.reserve(targets.size());
  xen_stems.reserve(targets.size());
  for (auto& target : targets) {
    auto old = existing_for(target.stem);
    if (!old) {
      out.plan.changes.push_back({'+', target.stem, ""});
    } else {
      std::string detail = changed_fields(target, *old, state, out.notes);
      if (!detail.empty()) out.plan.changes.push_back({'~', target.stem, detail});
    }
    if (!keep_paths.count(target.files.image)) plan_image(target, replaced_by_hand);
    // The target's texts are not read again: moved into the plan.
    if (target.files.config)
      write_text(out.plan.images, *target.files.config, std::move(target.config_text),
                 state.xen_images, replaced_by_hand);
    write_text(out.plan.entries, target.entry_path, std::move(target.entry_text), state.xen_entries,
               replaced_by_hand);
    add_to_menu(target.entry_path, target.entry);
    target.entry = LoaderEntry{};  // in the menu now; not read again
  }
  if (!replaced_by_hand.empty()) {
    out.warnings.push_back("replacing " + std::to_string(replaced_by_hand.size()) +
                           " file(s) that xen-boot-builder did not write, at names it writes: " +
                           join_paths(replaced_by_hand));
  }
  mark_installed();
}

// A target's image, after the run and, unless the record vouches for the one
// there, to write (with the digest of the one it replaces).
void PlanBuilder::plan_image(Target& target, std::vector<std::string>& replaced_by_hand) {
  const std::string& image = target.files.image;
  ImageRecipe recipe = recipe_for(target, options);
  const std::string id = recipe_id(recipe);
  // The configuration the image embeds: moved, unless a file holds it too.
  std::string config;
  if (policy_of(target).embeds_config)
    config = target.files.config ? target.config_text : std::move(target.config_text);
  out.plan.images_after[image] = {id, std::move(config)};
  const ExistingFile* old = find_file(state.xen_images, image);
  if (options.rebuild || !old || old->recipe != id) {
    note_replaced(image, old, replaced_by_hand);
    out.plan.images.push_back(
        {image, std::move(recipe), old && !options.rebuild ? old->digest : std::nullopt});
  }
  keep_paths.insert(image);
}

void PlanBuilder::write_text(std::vector<FileWrite>& files, const std::string& path,
                             std::string text,
                             const std::map<std::string, ExistingFile>& existing_files,
                             std::vector<std::string>& replaced_by_hand) {
  keep_paths.insert(path);
  const ExistingFile* old = find_file(existing_files, path);
  if (!old || !old->stamp || old->text != text) {
    note_replaced(path, old, replaced_by_hand);
    files.push_back({path, text, std::nullopt});
  }
  out.plan.texts_after[path] = std::move(text);
}

void PlanBuilder::mark_installed() {
  std::set<std::string> writes;
  for (const auto& file : out.plan.images) writes.insert(file.path);
  for (const auto& file : out.plan.entries) writes.insert(file.path);
  for (auto& outcome : out.generations) {
    if (outcome.status != GenerationOutcome::Status::xen_entry) continue;
    outcome.installed = !writes.count(*outcome.entry) &&
                        std::none_of(outcome.files.begin(), outcome.files.end(),
                                     [&](const std::string& file) { return writes.count(file); });
  }
}

// Decides what goes: the tool's Xen entries no target keeps (but not those
// of skipped generations, which stay with the files they use), the tool's
// images and configuration files nothing uses after the run, and the shell
// script's images (not with --lanzaboote: they are Lanzaboote's). Files made
// by hand are left alone, with a warning naming them; the entries that stay
// join the menu the default is retargeted in.
void PlanBuilder::collect_garbage() {
  std::vector<std::string> foreign;
  for (const auto& [path, file] : state.xen_entries) {
    if (keep_paths.count(path)) continue;
    auto name = parse_entry_name(file_name(path));
    auto kept_by = name ? kept.find(name->stem) : kept.end();
    const bool is_kept = kept_by != kept.end();
    if (file.ours && !is_kept) {
      out.plan.removals.push_back(path);
      const bool rebuilt = std::any_of(targets.begin(), targets.end(), [&](const Target& t) {
        return name && t.stem == name->stem;
      });
      if (name && !rebuilt) out.plan.changes.push_back({'-', name->stem, ""});
      continue;
    }
    if (file.ours) keep_paths.insert(path);
    if (!file.ours) foreign.push_back(path);
    try {
      LoaderEntry entry = parse_loader_entry(file.text, path);
      add_to_menu(path, entry);
      if (is_kept && file.ours) {
        GenerationOutcome& outcome = out.generations[kept_by->second];
        outcome.entry = path;
        outcome.files = layout::files_of(entry);
        outcome.installed = true;
      }
      if (file.ours) {
        for (const auto& used : layout::files_of(entry)) {
          keep_paths.insert(used);
          auto recorded = state.xen_images.find(used);
          if (recorded != state.xen_images.end() && recorded->second.recipe) {
            out.plan.images_after[used] = {*recorded->second.recipe, recorded->second.text};
          }
        }
      }
    } catch (const Error& e) {
      out.notes.push_back(path + ": kept unread: " + e.what());
    }
  }
  for (const auto& [path, file] : state.xen_images) {
    if (keep_paths.count(path)) continue;
    if (file.ours) {
      out.plan.removals.push_back(path);
    } else {
      foreign.push_back(path);
    }
  }
  for (const auto& path : options.lanzaboote ? std::vector<std::string>{} : state.legacy_images) {
    if (!keep_paths.count(path)) out.plan.removals.push_back(path);
  }
  if (!foreign.empty()) {
    out.warnings.push_back("left alone " + std::to_string(foreign.size()) +
                           " file(s) that xen-boot-builder did not write: " + join_paths(foreign));
  }
}

// Decides the loader.conf edit: a default (or preferred) naming a source
// entry names its Xen entry instead when systemd-boot would then boot the
// Xen entry of the same generation (see retarget_to). A loader.conf that
// cannot be used is left as it is, with a warning.
void PlanBuilder::retarget_default() {
  if (options.retarget_default && !state.loader_conf_problem.empty()) {
    out.warnings.push_back(std::string(layout::kLoaderConf) + ": " + state.loader_conf_problem +
                           "; the default entry was not changed");
  }
  if (!loader_conf) return;
  std::string text = retarget_loader_conf(*loader_conf, retarget_to(sources, xen_menu, xen_stems));
  if (text != *loader_conf) {
    out.plan.loader_conf = text;
    out.notes.push_back("loader/loader.conf: default retargeted to a Xen entry");
  } else if (by_default && by_default->bootspec && by_default->bootspec->xen &&
             !out.default_failure) {
    out.notes.push_back("loader/loader.conf: left as it is");
  }
}

}  // namespace

Planned make_plan(const std::vector<Generation>& generations, const EspState& state,
                  const PlanOptions& options) {
  PlanBuilder builder(generations, state, options);
  builder.choose_targets();
  builder.plan_writes();
  builder.collect_garbage();
  builder.retarget_default();
  // Held until the plan is applied: no room for more writes.
  builder.out.plan.images.shrink_to_fit();
  builder.out.plan.entries.shrink_to_fit();
  if (!options.notes) builder.out.notes = std::vector<std::string>{};
  return std::move(builder.out);
}

}  // namespace xbb
