#include "xbb/builder.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>

#include "embed.hpp"
#include "limits.hpp"
#include "posix_io.hpp"
#include "text.hpp"
#include "xbb/digest.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/memo.hpp"
#include "xbb/pe.hpp"
#include "xbb/planner.hpp"
#include "xbb/record.hpp"
#include "xbb/signer.hpp"

namespace fs = std::filesystem;

namespace xbb {
namespace {

// What a run learns of one xen.efi: from the record when it may reuse the
// check recorded (see reused_source), else by reading it (headers first, then
// the whole file).
Record::Source check_xen_efi(const fs::path& path, const std::optional<Record>& record,
                             const BuildOptions& options, SharedDigests& digests,
                             Reporter& reporter) {
  const std::string shown = path.string();
  const FileStamp stamp = posix::host_file_stamp(path, limits::kXenImageBytes, "Xen image");
  const bool shared = layout::may_share(layout_request(options));
  const bool drop_debug = !options.keep_debug_sections;
  if (auto recorded = reused_source(record, shown, stamp, shared, drop_debug)) {
    reporter.debug("checked " + shown + " before (recorded)");
    return *recorded;
  }
  auto check_headers = [](std::string_view start, std::uint64_t size) {
    pe::check_prefix(pe::bytes_of(start), size);
  };
  digests.take_bytes({});  // one xen.efi held at a time
  std::string bytes = posix::read_host_file(path, limits::kXenImageBytes, "Xen image",
                                            pe::kHeaderPrefixSize, check_headers);
  const auto file = pe::bytes_of(bytes);
  const pe::Image image = pe::parse(file);
  pe::check_efi_application(image);
  Record::Source source{stamp, false, "", drop_debug};
  for (const auto& section : image.sections) source.has_config |= section.name == ".config";
  if (shared && !source.has_config) {
    Sha256Sink digest;  // of the image as the shared layout writes it, streamed
    pe::InputSums sums;
    pe::Output(file, image, {}, {drop_debug}).stream({}, digest, &sums);
    source.shared_digest = digest.hex();
    digests.keep(path, bytes, drop_debug, source.shared_digest);
  }
  reporter.debug("checked " + shown + ": PE32+ EFI application, " + std::to_string(bytes.size()) +
                 " bytes");
  digests.keep_bytes(path, std::move(bytes));
  return source;
}

// Each distinct xen.efi is checked once; a generation whose image is missing
// or is not a PE32+ EFI application gets no entry, with the reason. Returns
// what was learnt, for the record.
std::map<std::string, Record::Source> check_xen_images(std::vector<Generation>& generations,
                                                       const std::optional<Record>& record,
                                                       const BuildOptions& options,
                                                       SharedDigests& digests, Reporter& reporter) {
  std::map<std::string, Record::Source> sources;
  std::map<std::string, std::string> problems;
  for (auto& generation : generations) {
    if (!generation.bootspec || !generation.bootspec->xen) continue;
    const std::string path = generation.xen_efi.path;
    if (!sources.count(path) && !problems.count(path)) {
      try {
        sources[path] = check_xen_efi(generation.xen_efi.path, record, options, digests, reporter);
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

// The record of a run that applied a plan whose images_after and texts_after
// are `images_after` and `texts_after` (taken, not copied: the record is
// their last use): each image of ours on the ESP after it, with the stamp
// and digest it has now, each entry and configuration file its targets
// keep, with the stamp it has now, the xen.efi files checked and the
// bootspecs read.
Record record_after(std::map<std::string, ImageOrigin> images_after,
                    std::map<std::string, std::string> texts_after, const EspState& state,
                    const ApplyReport& applied, const std::vector<Generation>& generations,
                    const BuildOptions& options, std::map<std::string, Record::Source> sources) {
  Record record;
  record.sources = std::move(sources);
  for (auto& [path, origin] : images_after) {
    if (auto written = applied.images.find(path); written != applied.images.end()) {
      record.images[path] = {written->second.stamp, written->second.digest,
                             std::move(origin.recipe), std::move(origin.config),
                             written->second.sha256};
      continue;
    }
    auto existing = state.xen_images.find(path);
    if (existing == state.xen_images.end() || !existing->second.stamp || !existing->second.digest)
      continue;
    record.images[path] = {*existing->second.stamp, *existing->second.digest,
                           std::move(origin.recipe), std::move(origin.config),
                           existing->second.sha256.value_or("")};
  }
  for (auto& [path, text] : texts_after) {
    if (auto written = applied.texts.find(path); written != applied.texts.end()) {
      record.texts[path] = {written->second, std::move(text)};
      continue;
    }
    const auto& folder =
        path.starts_with(layout::kEntriesFolder) ? state.xen_entries : state.xen_images;
    auto existing = folder.find(path);
    if (existing != folder.end() && existing->second.stamp && existing->second.text == text)
      record.texts[path] = {*existing->second.stamp, std::move(text)};
  }
  // Only what reads back as it was: the record's JSON text keeps a byte that
  // is not UTF-8 as the escape "\xNN", which names no file and no text.
  std::erase_if(record.texts, [](const auto& item) { return !text::is_utf8(item.second.text); });
  record.root = options.root.string();
  if (!text::is_utf8(record.root)) return record;
  for (const auto& generation : generations) {
    if (!generation.known) continue;
    const auto& [toplevel, known] = *generation.known;
    const bool readable = text::is_utf8(toplevel) && text::is_utf8(known.file) &&
                          text::is_utf8(known.xen_efi) && text::is_utf8(known.kernel) &&
                          (!known.initrd || text::is_utf8(*known.initrd));
    if (readable) record.bootspecs.insert(*generation.known);
  }
  return record;
}

// Empties the texts of `plan`'s writes (files, and sections of images) once
// they are applied, before the record is made and the run plans again: each
// write keeps its path, kind and sections, all that is read of it then.
void let_go_of_texts(Plan& plan) {
  const auto empty = [](std::string& text) {
    text.clear();
    text.shrink_to_fit();
  };
  for (auto* files : {&plan.images, &plan.entries}) {
    for (auto& file : *files) {
      if (auto* text = std::get_if<std::string>(&file.content)) empty(*text);
      if (auto* recipe = std::get_if<ImageRecipe>(&file.content)) {
        for (auto& section : recipe->sections) {
          if (auto* text = std::get_if<std::string>(&section.content)) empty(*text);
        }
      }
    }
  }
}

// The largest record a run that applies `plan` can write: every image after
// it, with stamps of the most digits, and `memo` (the largest it can keep).
// What the free-space check counts for it. The plan's texts, recipes and
// .config are lent to the record measured, not copied (a thousand entries'
// texts are megabytes), and given back.
std::uint64_t largest_record_size(Plan& plan, const std::vector<Generation>& generations,
                                  const BuildOptions& options,
                                  const std::map<std::string, Record::Source>& sources,
                                  std::optional<Memo> memo) {
  const FileStamp widest{std::numeric_limits<std::uint64_t>::max(),
                         std::numeric_limits<std::int64_t>::min()};
  Record record = record_after({}, {}, {}, {}, generations, options, sources);
  for (auto& [path, source] : record.sources) source.stamp = widest;
  for (auto& [path, origin] : plan.images_after) {
    const bool shared = layout::shared_image_digest(path.substr(path.rfind('/') + 1)).has_value();
    record.images[path] = {widest, std::string(32, '0'), std::move(origin.recipe),
                           std::move(origin.config), std::string(shared ? 64 : 0, '0')};
  }
  for (auto& [path, text] : plan.texts_after) record.texts[path] = {widest, std::move(text)};
  record.memo = std::move(memo);
  std::uint64_t size = 0;
  render_record(record, [&size](std::string_view piece) { size += piece.size(); });
  for (auto& [path, origin] : plan.images_after) {
    Record::Image& lent = record.images.at(path);
    origin.recipe = std::move(lent.recipe);
    origin.config = std::move(lent.config);
  }
  for (auto& [path, text] : plan.texts_after) text = std::move(record.texts.at(path).text);
  return size;
}

// The record of the last run on a partition, as read.
struct RecordRead {
  std::optional<Record> record;  // when there is one this version can read (and may use)
  std::vector<std::string> warnings;
};

// The record of the last run, when there is one this version can read. A
// record that cannot be read (a folder at its name, an I/O error) or that
// no run could have written (more images than the ESP can hold, 4 times
// over) is not used, with a warning: the run reads every image instead.
// With --rebuild it is not used either.
RecordRead read_record(const Esp& esp, bool rebuild, Reporter& reporter) {
  const std::string path(layout::kStateFile);
  RecordRead read;
  std::optional<std::string> text;
  try {
    text = esp.read(path, limits::kRecordTextBytes);
  } catch (const Error& e) {
    read.warnings.push_back(std::string(e.what()) +
                            "; the record is not used, every image is read");
    return read;
  }
  if (!text) return read;
  if (rebuild) {
    reporter.debug("--rebuild: the record is not used, every image is written");
    return read;
  }
  std::optional<std::uint64_t> esp_bytes;
  try {
    esp_bytes = esp.space().total_bytes;
  } catch (const Error& e) {
    reporter.debug(std::string(e.what()) + "; the record's size is not bounded");
  }
  try {
    read.record = parse_record(*text, max_record_images(esp_bytes));
    if (!read.record) reporter.debug(path + ": damaged or of another version; reading everything");
  } catch (const Error& e) {
    read.warnings.push_back(path + ": " + e.what() + "; ignored, every image is read");
  }
  return read;
}

// Replaces the record with `record`, streamed. The record is a cache: a run
// that cannot replace it says so and succeeds without it, unless the ESP is
// full (an esp_full Error, as for any other file).
void write_record(Esp& esp, const Record& record, std::vector<std::string>& warnings, bool warned,
                  Reporter& reporter) {
  const std::string path(layout::kStateFile);
  constexpr std::size_t kBufferBytes = 1 << 16;
  try {
    esp.write_atomic(path, [&record](EspFile& file) {
      std::string buffer;
      const auto flush = [&] {
        file.write({reinterpret_cast<const std::uint8_t*>(buffer.data()), buffer.size()});
        buffer.clear();
      };
      render_record(record, [&](std::string_view piece) {
        buffer.append(piece);
        if (buffer.size() >= kBufferBytes) flush();
      });
      flush();
    });
    reporter.debug("wrote " + path);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::esp_full) throw;
    if (!warned)
      warnings.push_back(std::string(e.what()) +
                         "; the record is not kept, the next run reads every image");
  }
}

// The generations, from the source entries or the profiles. The record's
// bootspecs serve only a run with the root they were resolved under.
std::vector<Generation> discover(const BuildOptions& options, const Esp& boot,
                                 const std::optional<Record>& record) {
  if (options.source == Source::profiles) return generations_from_profiles(options.root);
  if (record && record->root == options.root.string())
    return generations_from_entries(boot, options.root, record->bootspecs);
  return generations_from_entries(boot, options.root);
}

// Changes to report: the plan's, plus every file written that no change
// of an entry using it names, with what it is: an image rewritten although
// its entry and configuration stayed the same (a new xen.efi, a damaged or
// deleted image), a shared image, a configuration file.
std::vector<Change> changes_after(const Plan& plan, const ApplyReport& applied,
                                  const std::vector<GenerationOutcome>& generations) {
  std::vector<Change> changes = plan.changes;
  std::set<std::string> named;
  for (const auto& change : changes) named.insert(change.name);
  // ESP path -> the stems of the entries using it.
  std::map<std::string, std::vector<std::string>> users;
  for (const auto& generation : generations) {
    if (!generation.entry) continue;
    auto name = parse_entry_name(fs::path(*generation.entry).filename().string());
    if (!name) continue;
    for (const auto& file : generation.files) users[file].push_back(name->stem);
  }
  std::map<std::string, const FileWrite*> images;
  for (const auto& image : plan.images) images[image.path] = &image;
  for (const auto& path : applied.written) {
    auto image = images.find(path);
    if (image == images.end()) continue;  // an entry, loader.conf: named by the plan's changes
    const auto& using_it = users[path];
    if (std::any_of(using_it.begin(), using_it.end(),
                    [&](const std::string& stem) { return named.count(stem) > 0; }))
      continue;
    const auto* recipe = std::get_if<ImageRecipe>(&image->second->content);
    const std::string what = !recipe                    ? "xen config"
                             : recipe->sections.empty() ? "shared xen image"
                                                        : "xen image";
    // Its file name's stem: the entry's (xen-<rest>), or the shared image's own.
    const std::string name = fs::path(path).stem().string();
    if (named.insert(name).second) changes.push_back({'~', name, what});
  }
  return changes;
}

// Generations whose Xen entry the run planned, and those with a Xen entry
// after it (planned, or kept for a skipped generation).
std::pair<std::size_t, std::size_t> count_entries(const std::vector<GenerationOutcome>& outcomes) {
  const auto built = std::count_if(outcomes.begin(), outcomes.end(), [](const auto& g) {
    return g.status == GenerationOutcome::Status::xen_entry;
  });
  const auto entries = std::count_if(outcomes.begin(), outcomes.end(),
                                     [](const auto& g) { return g.entry.has_value(); });
  return {static_cast<std::size_t>(built), static_cast<std::size_t>(entries)};
}

void report_changes(const std::vector<Change>& changes, Reporter& reporter) {
  if (changes.empty()) {
    reporter.info("No change");
    return;
  }
  for (const auto& change : changes) reporter.change(change.kind, change.name, change.detail);
}

// What installing the Xen entries on one set of partitions did.
struct Installed {
  Planned planned;
  std::vector<Change> changes;
  std::vector<std::string> warnings;
  std::vector<std::string> written;  // paths on the partition that holds the entries
  std::vector<std::string> removed;  // and absolute paths of files on another partition

  // Adds what was done on another partition.
  void add(Installed other) {
    changes.insert(changes.end(), other.changes.begin(), other.changes.end());
    warnings.insert(warnings.end(), other.warnings.begin(), other.warnings.end());
    removed.insert(removed.end(), other.removed.begin(), other.removed.end());
  }
};

// Plans and applies the Xen entries of a run's generations on one set of
// partitions: the main ones, then each extra ESP, the same way.
struct Installer {
  const BuildOptions& options;
  const std::vector<Generation>& generations;
  const std::map<std::string, Record::Source>& sources;
  SharedDigests& shared_digests;  // what check_xen_images learnt for the maker
  const PlanOptions& plan_options;
  const Signer* signer;
  Reporter& reporter;
  // When the run may keep a memo (see memo.hpp): what it scanned before
  // discovering anything, and the warnings said before the plan's.
  const std::optional<Scan>& scan;
  const std::vector<std::string>& early_warnings;

  // The memo of a run that planned `planned` on `state`, scanned as `scanned`,
  // said `warnings` and keeps `after`: when its plan changes nothing and the
  // record vouched for every image it keeps; nullopt otherwise, or when
  // something it would say does not read back from the record's JSON as it is
  // (a byte that is not UTF-8).
  std::optional<Memo> memo_of(const Scan& scanned, const Planned& planned, const EspState& state,
                              std::vector<std::string> warnings, const Record& after) const {
    const Plan& plan = planned.plan;
    if (!plan.images.empty() || !plan.entries.empty() || plan.loader_conf || !plan.removals.empty())
      return std::nullopt;
    // A generation whose bootspec or xen.efi could not be read names no file
    // the memo could watch for its coming back: no memo while one is missing.
    if (std::any_of(generations.begin(), generations.end(),
                    [](const Generation& generation) { return !generation.bootspec; }))
      return std::nullopt;
    Memo memo;
    MemoSight sight;
    ImageSight images;
    for (const auto& [toplevel, known] : after.bootspecs)
      sight.host_files[known.file] = known.stamp;
    for (const auto& [path, source] : sources) sight.host_files[path] = source.stamp;
    if (plan_options.ucode) sight.host_files[plan_options.ucode->path] = plan_options.ucode->stamp;
    for (const auto& file : files_named_on_the_esp(generations)) {
      // The scan lists EFI/nixos (with each file's type) already.
      const auto slash = file.rfind('/');
      if (slash != std::string::npos && file.substr(0, slash) == layout::kLegacyImageFolder)
        continue;
      sight.esp_files[file] = state.boot_files.count(file) > 0;
    }
    for (const auto& [path, image] : after.images) {
      auto seen = state.xen_images.find(path);
      if (seen == state.xen_images.end() || !seen->second.recipe || !seen->second.stamp)
        return std::nullopt;  // read whole, not vouched for: no memo yet
      images[path].emplace(*seen->second.stamp, seen->second.text);
      memo.images[path] = seen->second.text.size();
    }
    for (const auto& [path, stamp] : sight.host_files) memo.host_files.push_back(path);
    for (const auto& [path, regular] : sight.esp_files) memo.esp_files.push_back(path);
    std::tie(memo.built, memo.entries) = count_entries(planned.generations);
    memo.warnings = std::move(warnings);
    memo.default_failure = planned.default_failure;
    const auto readable = [](const std::vector<std::string>& texts) {
      return std::all_of(texts.begin(), texts.end(), text::is_utf8);
    };
    if (!readable(memo.host_files) || !readable(memo.warnings) ||
        !text::is_utf8(memo.default_failure.value_or("")))
      return std::nullopt;
    memo.inputs = memo_inputs(scanned, sight, record_rest_size(after));
    memo.images_seen = images_fingerprint(images);
    return memo;
  }

  // The largest memo the run can keep (see memo_of): every file it names,
  // every warning it has, and room for those applying the plan may add.
  std::optional<Memo> largest_memo(const Installed& out) const {
    if (!scan) return std::nullopt;
    constexpr std::size_t kApplyWarningBytes = 64 << 10;
    Memo memo;
    memo.inputs = memo.images_seen = std::string(32, '0');
    for (const auto& generation : generations) {
      if (generation.known) memo.host_files.push_back(generation.known->second.file);
    }
    for (const auto& file : files_named_on_the_esp(generations)) memo.esp_files.push_back(file);
    for (const auto& [path, source] : sources) memo.host_files.push_back(path);
    if (plan_options.ucode) memo.host_files.push_back(plan_options.ucode->path);
    for (const auto& [path, origin] : out.planned.plan.images_after)
      memo.images[path] = std::numeric_limits<std::uint64_t>::max();
    memo.entries = memo.built = std::numeric_limits<std::size_t>::max();
    memo.warnings = early_warnings;
    memo.warnings.insert(memo.warnings.end(), out.warnings.begin(), out.warnings.end());
    memo.warnings.emplace_back(kApplyWarningBytes, ' ');
    return memo;
  }

  // The memo the next run finds: this run's own when it wrote nothing (its
  // warnings are the next run's), else that of the plan a run would make on
  // the partition as this one leaves it (with `after` as its record), when
  // that plan changes nothing. nullopt when the run may keep none.
  // `state` (what the run found) and the plan's texts are let go before
  // planning again, which would otherwise hold two of each at once.
  std::optional<Memo> next_memo(const Esp& boot, Partitions& partitions, Installed& out,
                                EspState& state, const ApplyReport& applied,
                                const std::optional<Record>& after) const {
    if (!scan) return std::nullopt;
    const auto with_early = [this](const std::vector<std::string>& more) {
      std::vector<std::string> all = early_warnings;
      all.insert(all.end(), more.begin(), more.end());
      return all;
    };
    if (applied.written.empty() && applied.removed.empty()) {
      if (auto memo = memo_of(*scan, out.planned, state, with_early(out.warnings), *after))
        return memo;
    }
    state = EspState{};
    out.planned.plan.entries.clear();
    out.planned.plan.texts_after.clear();
    return value_or_reason(
               [&]() -> std::optional<Memo> {
                 const Esp& loader_conf = partitions.on(layout::kLoaderConfPlace.partition);
                 const Scan scanned = scan_inputs(boot, loader_conf, options);
                 // Its generations are those of the source entries found
                 // before: a plan of them is not the partition's when those
                 // changed since.
                 if (scanned.sources != scan->sources) {
                   reporter.debug("the source entries changed during the run; no memo kept");
                   return std::nullopt;
                 }
                 // Images as `after` says: this run wrote or checked each; the
                 // next run checks them again before it trusts the memo.
                 const EspState now = read_esp_state(
                     boot, generations, options.retarget_default ? &loader_conf : nullptr, after,
                     ImageChecks::stamp_only);
                 const Planned again = make_plan(generations, now, plan_options);
                 return memo_of(scanned, again, now, with_early(again.warnings), *after);
               },
               [this](const std::string& why) { reporter.debug(why + "; no memo kept"); })
        .value_or(std::nullopt);
  }

  Installed install(Partitions& partitions, RecordRead record) const {
    Installed out;
    Esp& boot = partitions.on(layout::kImages.partition);
    EspState state = read_esp_state(
        boot, generations,
        options.retarget_default ? &partitions.on(layout::kLoaderConfPlace.partition) : nullptr,
        record.record);
    for (const auto& note : state.notes) reporter.debug(note);
    out.planned = make_plan(generations, state, plan_options);
    for (const auto& note : out.planned.notes) reporter.debug(note);
    out.planned.notes = std::vector<std::string>{};  // said: let go before applying
    const Plan& plan = out.planned.plan;
    const bool record_warned = !record.warnings.empty();
    out.warnings = std::move(record.warnings);
    out.warnings.insert(out.warnings.end(), out.planned.warnings.begin(),
                        out.planned.warnings.end());
    if (options.dry_run) {
      out.changes = plan.changes;
      for (const auto& file : plan.images) out.written.push_back(file.path);
      for (const auto& file : plan.entries) out.written.push_back(file.path);
      if (plan.loader_conf) out.written.emplace_back(layout::kLoaderConf);
      out.removed = plan.removals;
      for (const auto& path : out.written) reporter.debug("would write (if changed) " + path);
      for (const auto& path : out.removed) reporter.debug("would remove " + path);
      shared_digests.take_bytes({});
      if (partitions.separate()) out.add(clear_esp(partitions));
      return out;
    }
    // Let go (with the xen.efi it holds) once the plan is applied.
    auto maker = std::make_unique<PeImageMaker>(&shared_digests);
    const LaterWrite record_write{
        std::string(layout::kStateFile),
        largest_record_size(out.planned.plan, generations, options, sources, largest_memo(out))};
    ApplyReport applied;
    Installed cleared;  // on the ESP
    if (!partitions.separate()) {
      applied = apply_plan(boot, plan, *maker, signer, record_write);
    } else {
      // The ESP's old Xen entries have the names of the new ones: they go
      // before loader.conf can name one, so that systemd-boot, which reads
      // entries from both partitions, never finds the default on both.
      Plan writes = plan;
      writes.loader_conf.reset();
      writes.removals.clear();
      applied = apply_plan(boot, writes, *maker, signer, record_write);
      cleared = clear_esp(partitions);
      Plan rest;
      rest.loader_conf = plan.loader_conf;
      rest.removals = plan.removals;
      const ApplyReport after = apply_plan(boot, rest, *maker, nullptr, std::nullopt,
                                           &partitions.on(layout::kLoaderConfPlace.partition));
      applied.written.insert(applied.written.end(), after.written.begin(), after.written.end());
      applied.removed.insert(applied.removed.end(), after.removed.begin(), after.removed.end());
      applied.warnings.insert(applied.warnings.end(), after.warnings.begin(), after.warnings.end());
    }
    maker.reset();
    shared_digests.take_bytes({});  // unless the maker took them
    let_go_of_texts(out.planned.plan);
    // Optional, as the record read_esp_state takes (a Record would be copied).
    std::optional<Record> after = record_after(std::move(out.planned.plan.images_after),
                                               std::move(out.planned.plan.texts_after), state,
                                               applied, generations, options, sources);
    // What the record took of each file written is not read again.
    applied.images = {};
    applied.texts = {};
    out.warnings.insert(out.warnings.end(), applied.warnings.begin(), applied.warnings.end());
    after->memo = next_memo(boot, partitions, out, state, applied, after);
    // A run that changed nothing writes nothing, the record included, unless
    // there was none it could use or it had to make images again to find them
    // equal (a touched xen.efi): a stale record only costs the next run some
    // reading (its memo no longer matches), not that.
    const bool changed =
        !applied.written.empty() || !applied.removed.empty() || !applied.unchanged.empty();
    if (!record.record || (changed && *after != *record.record))
      write_record(boot, *after, out.warnings, record_warned, reporter);
    for (const auto& path : applied.written) reporter.debug("wrote " + path);
    for (const auto& path : applied.removed) reporter.debug("removed " + path);
    out.changes = changes_after(plan, applied, out.planned.generations);
    out.written = std::move(applied.written);
    out.removed = std::move(applied.removed);
    out.add(std::move(cleared));
    return out;
  }

  // With the entries on the XBOOTLDR partition, removes what the tool left
  // on the ESP before (entries, images, configurations, the script's images,
  // the record), once their replacements are in place. Hand-made files stay,
  // with a warning.
  Installed clear_esp(Partitions& partitions) const {
    Installed installed;
    Esp& esp = partitions.esp();
    const std::string shown = esp.root().string();
    const EspState state = read_esp_state(esp, {}, nullptr, std::nullopt);
    PlanOptions cleanup = plan_options;
    cleanup.retarget_default = false;
    Planned planned = make_plan({}, state, cleanup);
    Plan& plan = planned.plan;
    if (esp.type(std::string(layout::kStateFile)) == EspFileType::regular)
      plan.removals.emplace_back(layout::kStateFile);
    for (const auto& warning : planned.warnings)
      installed.warnings.push_back(shown + ": " + warning);
    if (plan.removals.empty()) return installed;
    for (const auto& change : plan.changes) {
      installed.changes.push_back({change.kind, change.name + " on " + shown, change.detail});
    }
    std::vector<std::string> removed = plan.removals;
    if (!options.dry_run) {
      PeImageMaker maker;
      removed = apply_plan(esp, plan, maker).removed;
    }
    for (const auto& path : removed) {
      installed.removed.push_back((esp.root() / path).string());
      reporter.debug((options.dry_run ? "would remove " : "removed ") + shown + "/" + path);
    }
    return installed;
  }
};

// Says how a run ended: its last progress word, its warnings, changes and
// failures.
void report_run(const RunResult& result, std::size_t built, Reporter& reporter,
                const std::function<void(const std::string&)>& finish) {
  finish(built == 0 ? "none found." : "done.");
  if (built == 0 && !reporter.at_least(Verbosity::debug)) {
    reporter.line("Run with 'debug' to see why no generation got a Xen entry.");
  }
  for (const auto& warning : result.warnings) reporter.warning(warning);
  report_changes(result.changes, reporter);
  for (const auto& failure : result.partition_failures) reporter.error(failure.message);
  if (result.default_failure) {
    reporter.error(*result.default_failure +
                   ", the default boot entry, got no Xen entry (see the warning above)");
  }
}

// When the record's memo holds the fingerprint of the inputs found now
// (`scan`, then what the memo names looked at again, and the length of the
// record's other lines),
// `result` gets what the run that kept it said, and true: nothing else is
// read. False otherwise.
bool answer_from_memo(const Esp& boot, const Scan& scan, RunResult& result) {
  const std::optional<std::optional<RecordMemo>> found =
      value_or_reason([&] { return read_record_memo(boot); },
                      [](const std::string&) {});  // read again the usual way, which warns
  if (!found || !*found) return false;
  const RecordMemo& kept = **found;
  if (memo_inputs(scan, look_again(boot, kept.memo), kept.rest_size) != kept.memo.inputs ||
      images_fingerprint(look_at_images(boot, kept.memo)) != kept.memo.images_seen)
    return false;
  result.warnings = kept.memo.warnings;
  result.default_failure = kept.memo.default_failure;
  result.entries = kept.memo.entries;
  result.entries_built = kept.memo.built;
  return true;
}

}  // namespace

layout::Request layout_request(const BuildOptions& options) {
  return {options.layout, options.sign_key.has_value(), options.source == Source::profiles};
}

int RunResult::exit_status() const {
  return error || default_failure || !partition_failures.empty() ? 1 : 0;
}

RunResult run_build(const BuildOptions& options, Reporter& reporter) {
  reporter.progress(options.dry_run ? "Planning Xen Project Hypervisor boot entries..."
                                    : "Installing Xen Project Hypervisor boot entries...");
  RunResult result;
  bool finished_line = false;
  auto finish = [&](const std::string& word) {
    if (!finished_line) reporter.line(word);
    finished_line = true;
  };
  const auto on_wait = [&](const std::string& text) { reporter.warning(text); };
  const EspLock::Mode lock_mode =
      options.dry_run ? EspLock::Mode::shared : EspLock::Mode::exclusive;
  try {
    reporter.debug("");
    reporter.debug("ESP: " + options.esp.string() +
                   (options.xbootldr ? ", XBOOTLDR: " + options.xbootldr->string() : "") +
                   ", root: " + options.root.string());
    Partitions partitions(options.esp, options.xbootldr);
    if (options.xbootldr && !partitions.separate())
      reporter.debug("the XBOOTLDR folder is the ESP's: one partition");
    PartitionLocks locks(partitions, on_wait, lock_mode);
    std::optional<Scan> scan;
    if (memo_applies(options, partitions, reporter)) {
      scan = value_or_reason(
          [&] {
            return scan_inputs(partitions.on(layout::kEntries.partition),
                               partitions.on(layout::kLoaderConfPlace.partition), options);
          },
          [](const std::string&) {});  // read again the usual way, which says what is wrong
      if (scan && answer_from_memo(partitions.on(layout::kRecord.partition), *scan, result)) {
        report_run(result, result.entries_built, reporter, finish);
        return result;
      }
    }
    RecordRead record =
        read_record(partitions.on(layout::kRecord.partition), options.rebuild, reporter);
    std::vector<Generation> generations =
        discover(options, partitions.on(layout::kEntries.partition), record.record);
    reporter.debug("found " + std::to_string(generations.size()) + " generation(s)");
    // Said before the plan's warnings.
    std::vector<std::string> early_warnings = keep_one_per_xen_name(generations);
    SharedDigests shared_digests;
    const auto sources =
        check_xen_images(generations, record.record, options, shared_digests, reporter);
    std::optional<PrivateFolder> scratch;  // initrds with their secrets, until the run ends
    if (layout::embeds_kernel(layout_request(options))) {
      scratch.emplace();
      prepare_embedded_files(generations, options.root, *scratch, options.helper_timeout);
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
    if (options.sign_key) {
      signer.emplace(*options.sign_key, options.sign_cert.value_or(""), options.helper_timeout);
    }
    PlanOptions plan_options;
    if (signer) plan_options.signer = signer->identity();
    plan_options.retarget_default = options.retarget_default;
    plan_options.layout = layout_request(options);
    plan_options.keep_debug_sections = options.keep_debug_sections;
    plan_options.lanzaboote = options.lanzaboote;
    plan_options.rebuild = options.rebuild;
    plan_options.notes = reporter.at_least(Verbosity::debug);
    if (options.ucode) {
      plan_options.ucode =
          HostFile{*options.ucode,
                   posix::host_file_stamp(*options.ucode, limits::kKernelBytes, "microcode"),
                   {}};
    }
    const Installer installer{options,        generations,  sources,
                              shared_digests, plan_options, signer ? &*signer : nullptr,
                              reporter,       scan,         early_warnings};

    Installed main = installer.install(partitions, std::move(record));
    result.warnings = std::move(early_warnings);
    result.warnings.insert(result.warnings.end(), main.warnings.begin(), main.warnings.end());
    result.changes = std::move(main.changes);
    result.written = std::move(main.written);
    result.removed = std::move(main.removed);
    result.default_failure = main.planned.default_failure;
    result.generations = std::move(main.planned.generations);
    for (const auto& extra : options.extra_esps) {
      const std::string shown = extra.string();
      try {
        reporter.debug("extra ESP: " + shown);
        Partitions mirror(extra);
        PartitionLocks mirror_locks(mirror, on_wait, lock_mode);
        Installed copy = installer.install(
            mirror, read_record(mirror.on(layout::kRecord.partition), options.rebuild, reporter));
        for (auto& warning : copy.warnings) result.warnings.push_back(shown + ": " + warning);
        for (auto& change : copy.changes) {
          change.name += " on " + shown;
          result.changes.push_back(std::move(change));
        }
        for (const auto& path : copy.written) result.written.push_back((extra / path).string());
        for (const auto& path : copy.removed) result.removed.push_back((extra / path).string());
      } catch (const Error& e) {
        const std::string message = e.what();
        result.partition_failures.push_back(
            {shown, e.kind(), message.starts_with(shown) ? message : shown + ": " + message});
      }
    }
    std::tie(result.entries_built, result.entries) = count_entries(result.generations);
    report_run(result, result.entries_built, reporter, finish);
  } catch (const Error& e) {
    finish("failed.");
    reporter.error(e.what());
    result.error = e.kind();
    result.error_message = e.what();
  }
  return result;
}

}  // namespace xbb
