#include "xbb/builder.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "embed.hpp"
#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/pe.hpp"
#include "xbb/planner.hpp"
#include "xbb/record.hpp"
#include "xbb/signer.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

// What a run learns of one xen.efi: from the record when its stamp is the one
// recorded, else by reading it (headers first, then the whole file).
Record::Source check_xen_efi(const fs::path& path, const std::optional<Record>& record,
                             const BuildOptions& options, Reporter& reporter) {
  const std::string shown = path.string();
  const FileStamp stamp = posix::host_file_stamp(path, limits::kXenImageBytes, "Xen image");
  const bool shared = options.layout == layout::Kind::shared;
  const bool drop_debug = !options.keep_debug_sections;
  if (record) {
    auto found = record->sources.find(shown);
    if (found != record->sources.end() && found->second.stamp == stamp &&
        (!shared || (!found->second.shared_digest.empty() &&
                     found->second.shared_drops_debug == drop_debug))) {
      reporter.debug("checked " + shown + " before (recorded)");
      return found->second;
    }
  }
  auto check_headers = [](std::string_view start, std::uint64_t size) {
    pe::check_prefix(pe::bytes_of(start), size);
  };
  const std::string bytes = posix::read_host_file(path, limits::kXenImageBytes, "Xen image",
                                                  pe::kHeaderPrefixSize, check_headers);
  const auto file = pe::bytes_of(bytes);
  const pe::Image image = pe::parse(file);
  pe::check_efi_application(image);
  Record::Source source{stamp, false, "", drop_debug};
  for (const auto& section : image.sections) source.has_config |= section.name == ".config";
  if (shared && !source.has_config) {
    Sha256Sink digest;  // of the image as the shared layout writes it, streamed
    pe::Output(file, image, {}, {drop_debug}).stream({}, digest);
    source.shared_digest = digest.hex();
  }
  reporter.debug("checked " + shown + ": PE32+ EFI application, " + std::to_string(bytes.size()) +
                 " bytes");
  return source;
}

// Each distinct xen.efi is checked once; a generation whose image is missing
// or is not a PE32+ EFI application gets no entry, with the reason. Returns
// what was learnt, for the record.
std::map<std::string, Record::Source> check_xen_images(std::vector<Generation>& generations,
                                                       const std::optional<Record>& record,
                                                       const BuildOptions& options,
                                                       Reporter& reporter) {
  std::map<std::string, Record::Source> sources;
  std::map<std::string, std::string> problems;
  for (auto& generation : generations) {
    if (!generation.bootspec || !generation.bootspec->xen) continue;
    const std::string path = generation.xen_efi.path.string();
    if (!sources.count(path) && !problems.count(path)) {
      try {
        sources[path] = check_xen_efi(generation.xen_efi.path, record, options, reporter);
      } catch (const Error& e) {
        const std::string message = e.what();
        problems[path] = message.starts_with(path) ? message : path + ": " + message;
      }
    }
    if (auto problem = problems.find(path); problem != problems.end()) {
      generation.bootspec.reset();
      generation.problem = problem->second;
      continue;
    }
    const Record::Source& source = sources[path];
    generation.xen_efi.stamp = source.stamp;
    generation.xen_has_config = source.has_config;
    generation.shared_digest = source.shared_digest;
  }
  return sources;
}

// The record of a run that applied `plan`: each image of ours on the ESP
// after it, with the stamp and digest it has now, and the xen.efi files
// checked.
Record record_after(const Plan& plan, const EspState& state, const ApplyReport& applied,
                    std::map<std::string, Record::Source> sources) {
  Record record;
  record.sources = std::move(sources);
  record.foreign = plan.foreign;
  for (const auto& [path, origin] : plan.images_after) {
    if (auto written = applied.images.find(path); written != applied.images.end()) {
      record.images[path] = {written->second.first, written->second.second, origin.recipe,
                             origin.config};
      continue;
    }
    auto existing = state.xen_images.find(path);
    if (existing == state.xen_images.end() || !existing->second.stamp || !existing->second.digest)
      continue;
    record.images[path] = {*existing->second.stamp, *existing->second.digest, origin.recipe,
                           origin.config};
  }
  return record;
}

// The record of the last run, when there is one this version can read.
std::optional<Record> read_record(const Esp& esp, std::optional<std::string>& text,
                                  Reporter& reporter) {
  try {
    text = esp.read(std::string(layout::kStateFile), 16 << 20);
  } catch (const Error& e) {
    reporter.debug(std::string("no usable record: ") + e.what());
    return std::nullopt;
  }
  if (!text) return std::nullopt;
  auto record = parse_record(*text);
  if (!record)
    reporter.debug(std::string(layout::kStateFile) +
                   ": damaged or of another version; reading everything");
  return record;
}

std::vector<Generation> discover(const BuildOptions& options, const Esp& esp) {
  if (options.source == Source::profiles) return generations_from_profiles(options.root);
  return generations_from_entries(esp, options.root);
}

// Changes to report: the plan's, plus images rewritten although their entry
// and configuration stayed the same (a new xen.efi).
std::vector<Change> changes_after(const Plan& plan, const ApplyReport& applied) {
  std::vector<Change> changes = plan.changes;
  std::set<std::string> named;
  for (const auto& change : changes) named.insert(change.name);
  for (const auto& path : applied.written) {
    for (const auto& image : plan.images) {
      const auto* recipe = std::get_if<ImageRecipe>(&image.content);
      if (image.path != path || !recipe || recipe->sections.empty()) continue;
      std::string stem = fs::path(path).stem().string();
      if (named.insert(stem).second) changes.push_back({'~', stem, "xen image"});
    }
  }
  return changes;
}

void report_changes(const std::vector<Change>& changes, Reporter& reporter) {
  if (changes.empty()) {
    reporter.info("No change");
    return;
  }
  for (const auto& change : changes) reporter.change(change.kind, change.name, change.detail);
}

}  // namespace

int RunResult::exit_status() const { return error || default_failure ? 1 : 0; }

RunResult run_build(const BuildOptions& options, Reporter& reporter) {
  reporter.progress(options.dry_run ? "Planning Xen Project Hypervisor boot entries..."
                                    : "Installing Xen Project Hypervisor boot entries...");
  RunResult result;
  bool finished_line = false;
  auto finish = [&](const std::string& word) {
    if (!finished_line) reporter.line(word);
    finished_line = true;
  };
  try {
    reporter.debug("");
    reporter.debug("ESP: " + options.esp.string() + ", root: " + options.root.string());
    Esp esp(options.esp);
    // `plan` and `list` only read, like `verify`: shared, so that they never
    // read an ESP half way through a build.
    const EspLock lock(
        esp, [&](const auto& text) { reporter.warning(text); }, std::chrono::seconds(60),
        options.dry_run ? EspLock::Mode::shared : EspLock::Mode::exclusive);
    std::optional<std::string> record_text;
    const std::optional<Record> record = read_record(esp, record_text, reporter);
    std::vector<Generation> generations = discover(options, esp);
    reporter.debug("found " + std::to_string(generations.size()) + " generation(s)");
    // Said before the plan's warnings.
    std::vector<std::string> early_warnings = keep_one_per_xen_name(generations);
    auto sources = check_xen_images(generations, record, options, reporter);
    std::optional<PrivateFolder> scratch;  // initrds with their secrets, until the run ends
    if (options.layout == layout::Kind::self_contained) {
      scratch.emplace();
      prepare_embedded_files(generations, options.root, *scratch);
    }
    if (options.lanzaboote) {
      for (auto& generation : generations) {
        if (!generation.bootspec) continue;
        generation.entry.sort_key = generation.bootspec->lanzaboote_sort_key.value_or("lanza");
        if (const auto& problem = generation.bootspec->lanzaboote_sort_key_problem) {
          early_warnings.push_back("nixos-" + generation.rest + ": " + *problem +
                                   "; its Xen entry sorts with \"lanza\"");
        }
      }
    }
    std::optional<SbsignSigner> signer;
    if (options.sign_key) signer.emplace(*options.sign_key, options.sign_cert.value_or(""));
    const EspState state = read_esp_state(esp, generations, options.retarget_default, record);
    PlanOptions plan_options;
    if (signer) plan_options.signer = signer->identity();
    plan_options.retarget_default = options.retarget_default;
    plan_options.layout = options.layout;
    plan_options.keep_debug_sections = options.keep_debug_sections;
    plan_options.lanzaboote = options.lanzaboote;
    if (options.ucode) {
      plan_options.ucode =
          HostFile{*options.ucode,
                   posix::host_file_stamp(*options.ucode, limits::kKernelBytes, "microcode"),
                   {}};
    }
    Planned planned = make_plan(generations, state, plan_options);
    for (const auto& note : planned.notes) reporter.debug(note);

    const Plan& plan = planned.plan;
    result.warnings = std::move(early_warnings);
    result.warnings.insert(result.warnings.end(), planned.warnings.begin(), planned.warnings.end());
    result.changes = plan.changes;
    result.default_failure = planned.default_failure;
    result.generations = std::move(planned.generations);
    const std::size_t built = static_cast<std::size_t>(std::count_if(
        result.generations.begin(), result.generations.end(), [](const GenerationOutcome& g) {
          return g.status == GenerationOutcome::Status::xen_entry;
        }));
    result.entries = static_cast<std::size_t>(
        std::count_if(result.generations.begin(), result.generations.end(),
                      [](const GenerationOutcome& g) { return g.entry.has_value(); }));
    if (!options.dry_run) {
      PeImageMaker maker;
      ApplyReport applied = apply_plan(esp, plan, maker, signer ? &*signer : nullptr);
      const std::string text =
          render_record(record_after(plan, state, applied, std::move(sources)));
      if (text != record_text) {
        esp.write_atomic(std::string(layout::kStateFile), text);
        reporter.debug("wrote " + std::string(layout::kStateFile));
      }
      for (const auto& path : applied.written) reporter.debug("wrote " + path);
      for (const auto& path : applied.removed) reporter.debug("removed " + path);
      result.warnings.insert(result.warnings.end(), applied.warnings.begin(),
                             applied.warnings.end());
      result.changes = changes_after(plan, applied);
      result.written = std::move(applied.written);
      result.removed = std::move(applied.removed);
    } else {
      for (const auto& file : plan.images) result.written.push_back(file.path);
      for (const auto& file : plan.entries) result.written.push_back(file.path);
      if (plan.loader_conf) result.written.emplace_back(layout::kLoaderConf);
      result.removed = plan.removals;
      for (const auto& path : result.written) reporter.debug("would write (if changed) " + path);
      for (const auto& path : result.removed) reporter.debug("would remove " + path);
    }
    finish(built == 0 ? "none found." : "done.");
    if (built == 0 && !reporter.at_least(Verbosity::debug)) {
      reporter.line("Run with 'debug' to see why no generation got a Xen entry.");
    }
    for (const auto& warning : result.warnings) reporter.warning(warning);
    report_changes(result.changes, reporter);
    if (result.default_failure) {
      reporter.error(*result.default_failure +
                     ", the default boot entry, got no Xen entry (see the warning above)");
    }
  } catch (const Error& e) {
    finish("failed.");
    reporter.error(e.what());
    result.error = e.kind();
    result.error_message = e.what();
  }
  return result;
}

}  // namespace xbb
