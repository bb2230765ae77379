#include "xbb/builder.hpp"

#include <map>
#include <optional>
#include <set>

#include "limits.hpp"
#include "posix_io.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/pe.hpp"
#include "xbb/planner.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

// Each distinct xen.efi is read and checked once, its headers before the
// rest; a generation whose image is missing or is not a PE32+ EFI application
// gets no entry, with the reason.
void check_xen_images(std::vector<Generation>& generations, Reporter& reporter) {
  std::map<fs::path, std::string> problems;
  for (auto& generation : generations) {
    if (!generation.bootspec || !generation.bootspec->xen) continue;
    auto found = problems.find(generation.xen_efi);
    if (found == problems.end()) {
      std::string problem;
      const std::string shown = generation.xen_efi.string();
      auto check_headers = [](std::string_view start, std::uint64_t size) {
        pe::check_prefix(pe::bytes_of(start), size);
      };
      try {
        std::string bytes =
            posix::read_host_file(generation.xen_efi, limits::kXenImageBytes, "Xen image",
                                  pe::kHeaderPrefixSize, check_headers);
        pe::check_efi_application(pe::parse(pe::bytes_of(bytes)));
        reporter.debug("checked " + shown + ": PE32+ EFI application, " +
                       std::to_string(bytes.size()) + " bytes");
      } catch (const Error& e) {
        const std::string message = e.what();
        problem = message.starts_with(shown) ? message : shown + ": " + message;
      }
      found = problems.emplace(generation.xen_efi, problem).first;
    }
    if (!found->second.empty()) {
      generation.bootspec.reset();
      generation.problem = found->second;
    }
  }
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
      if (image.path != path) continue;
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
    std::optional<EspLock> lock;
    if (!options.dry_run) lock.emplace(esp, [&](const auto& text) { reporter.warning(text); });
    std::vector<Generation> generations = discover(options, esp);
    reporter.debug("found " + std::to_string(generations.size()) + " generation(s)");
    check_xen_images(generations, reporter);
    EspState state = read_esp_state(esp, generations, options.retarget_default);
    PlanOptions plan_options;
    plan_options.retarget_default = options.retarget_default;
    Planned planned = make_plan(generations, state, plan_options);
    for (const auto& note : planned.notes) reporter.debug(note);

    const Plan& plan = planned.plan;
    result.warnings = planned.warnings;
    result.changes = plan.changes;
    result.entries = plan.entries.size();
    result.default_failure = planned.default_failure;
    if (!options.dry_run) {
      ApplyReport applied = apply_plan(esp, plan);
      for (const auto& path : applied.written) reporter.debug("wrote " + path);
      for (const auto& path : applied.removed) reporter.debug("removed " + path);
      result.warnings.insert(result.warnings.end(), applied.warnings.begin(),
                             applied.warnings.end());
      result.changes = changes_after(plan, applied);
      result.written = std::move(applied.written);
      result.removed = std::move(applied.removed);
    } else {
      for (const auto& file : plan.images) reporter.debug("would write (if changed) " + file.path);
      for (const auto& file : plan.entries) reporter.debug("would write (if changed) " + file.path);
      if (plan.loader_conf) reporter.debug("would rewrite loader/loader.conf");
      for (const auto& path : plan.removals) reporter.debug("would remove " + path);
    }
    finish(plan.entries.empty() ? "none found." : "done.");
    if (plan.entries.empty() && !reporter.at_least(Verbosity::debug)) {
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
