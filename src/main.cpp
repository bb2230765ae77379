// Command line: parses arguments, looks the verb up in one table (what it
// takes: its positional arguments and its options) and calls its function;
// nothing else.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "xbb/builder.hpp"
#include "xbb/error.hpp"
#include "xbb/esp.hpp"
#include "xbb/inspect.hpp"
#include "xbb/json_text.hpp"
#include "xbb/layout.hpp"
#include "xbb/output.hpp"
#include "xbb/report.hpp"
#include "xbb/signer.hpp"
#include "xbb/verify.hpp"
#include "xbb/watch.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// --helper-timeout at most: a day.
constexpr std::uint64_t kMaxHelperTimeout = 86400;
// The longest wait a millisecond option takes: a day.
constexpr std::uint64_t kMaxMilliseconds = 24 * 60 * 60 * 1000;

const char* const kUsage =
    "Usage: xen-boot-builder [options] <quiet|default|info|debug>\n"
    "       xen-boot-builder [options] build|plan|watch [quiet|default|info|debug]\n"
    "       xen-boot-builder [options] [--json] list\n"
    "       xen-boot-builder [--esp DIR] [--xbootldr DIR] [--sign-cert FILE]\n"
    "                        [--helper-timeout SECONDS] [--json] verify\n"
    "       xen-boot-builder [--json] inspect IMAGE\n"
    "\n"
    "Installs Xen boot entries on the EFI System Partition for every NixOS\n"
    "generation whose bootspec carries the Xen extension.\n"
    "\n"
    "Commands:\n"
    "  build        write the Xen entries and images (the default)\n"
    "  plan         show what build would change; write nothing\n"
    "  list         show each generation with its Xen entry and files, or why it\n"
    "               has none, and which one is the default\n"
    "  verify       check that every Xen entry on the ESP is bootable\n"
    "  inspect      show the sections, build id and embedded configuration of a\n"
    "               PE (xen.efi) or ELF (multiboot) Xen image\n"
    "  watch        run as a daemon: build whenever the system profiles or\n"
    "               systemd-boot's entries change (SIGHUP: build now)\n"
    "\n";

// A command line refused: what to say, and the exit status.
struct UsageError {
  std::string message;
  int status = kExitUsage;
};

int usage_error(const std::string& message, int status) {
  std::cerr << "xen-boot-builder: " << message << "\n"
            << "Try 'xen-boot-builder --help'.\n";
  return status;
}

// The options a verb may take (--help and --version stand alone), one bit
// each.
enum Option : std::uint32_t {
  kEsp = 1U << 0,
  kXbootldr = 1U << 1,
  kExtraEsp = 1U << 2,
  kRoot = 1U << 3,
  kSource = 1U << 4,
  kLayout = 1U << 5,
  kUcode = 1U << 6,
  kSignKey = 1U << 7,
  kSignCert = 1U << 8,
  kLanzaboote = 1U << 9,
  kKeepDebugSections = 1U << 10,
  kNoDefault = 1U << 11,
  kRebuild = 1U << 12,
  kDebounce = 1U << 13,
  kDebounceMax = 1U << 14,
  kHelperTimeout = 1U << 15,
  kJson = 1U << 16,
};

// Each option, with what the verbs that take it do, said of several verbs
// and of one: "--json: only plan, list, verify and inspect print JSON, not
// build".
struct OptionRule {
  Option option;
  const char* name;
  const char* several_do;
  const char* one_does;
};

constexpr OptionRule kOptionRules[] = {
    {kEsp, "esp", "read the ESP", "reads the ESP"},
    {kXbootldr, "xbootldr", "read boot partitions", "reads boot partitions"},
    {kExtraEsp, "extra-esp", "handle mirrored ESPs", "handles mirrored ESPs"},
    {kRoot, "root", "read generations", "reads generations"},
    {kSource, "source", "read generations", "reads generations"},
    {kLayout, "layout", "lay out images", "lays out images"},
    {kUcode, "ucode", "make images", "makes images"},
    {kSignKey, "sign-key", "sign images", "signs images"},
    {kSignCert, "sign-cert", "check signatures", "checks signatures"},
    {kLanzaboote, "lanzaboote", "read generations", "reads generations"},
    {kKeepDebugSections, "keep-debug-sections", "make images", "makes images"},
    {kNoDefault, "no-default", "choose the default entry", "chooses the default entry"},
    {kRebuild, "rebuild", "rebuild images", "rebuilds images"},
    {kDebounce, "debounce", "wait for changes", "waits for changes"},
    {kDebounceMax, "debounce-max", "wait for changes", "waits for changes"},
    {kHelperTimeout, "helper-timeout", "run other programs", "runs other programs"},
    {kJson, "json", "print JSON", "prints JSON"},
};

// What build makes the ESP from: every verb that reads generations takes
// these.
constexpr std::uint32_t kBuildOptions = kEsp | kXbootldr | kExtraEsp | kRoot | kSource | kLayout |
                                        kUcode | kSignKey | kSignCert | kLanzaboote |
                                        kKeepDebugSections | kNoDefault | kHelperTimeout;

// The positional arguments after the verb.
enum class Arity {
  verbosity,  // an optional verbosity word (exactly one in the drop-in form)
  none,
  image,  // one image file
};

using Arguments = std::vector<std::string>;

po::options_description visible_options() {
  po::options_description visible("Options");
  visible.add_options()("esp", po::value<std::string>()->value_name("DIR"),
                        "ESP mount point (default: $efiMountPoint, else /boot)")(
      "root", po::value<std::string>()->default_value("/")->value_name("DIR"),
      "treat /nix/... paths as under DIR")(
      "source", po::value<std::string>()->default_value("entries")->value_name("KIND"),
      "where generations come from: 'entries' (systemd-boot's loader/entries/nixos-*.conf) "
      "or 'profiles' (/nix/var/nix/profiles, for Lanzaboote)")(
      "layout", po::value<std::string>()->value_name("KIND"),
      "how hypervisor images are laid out: 'auto' (the default: self-contained when signing "
      "or with --source profiles, else shared, else unified for a xen.efi that carries its "
      "own .config), 'unified' (one image per entry, its configuration embedded), 'shared' "
      "(one image per Xen build, a configuration file per entry) or 'self-contained' (one "
      "image per entry carrying its kernel and initrd too)")(
      "ucode", po::value<std::string>()->value_name("FILE"),
      "microcode that self-contained images embed as .ucode")(
      "xbootldr", po::value<std::string>()->value_name("DIR"),
      "the Extended Boot Loader partition's mount point (bootctl's boot path): systemd-boot's "
      "entries, the kernels and the Xen files are there, loader.conf on the ESP")(
      "extra-esp", po::value<std::vector<std::string>>()->composing()->value_name("DIR"),
      "another ESP (a mirror) that gets the same Xen entries and images; repeatable")(
      "sign-key", po::value<std::string>()->value_name("FILE"),
      "sign every image with this key (PEM), with sbsign")(
      "sign-cert", po::value<std::string>()->value_name("FILE"),
      "the certificate (PEM) of --sign-key; with verify, check every image's signature "
      "against it")("lanzaboote",
                    "for Lanzaboote machines: generations from the system profiles, self-contained "
                    "images, loader.conf and Lanzaboote's folders left alone")(
      "keep-debug-sections", "keep the .debug_* sections of xen.efi in the images written")(
      "no-default", "leave loader/loader.conf alone")(
      "rebuild", "build, plan: ignore the record of the last run and write every image again")(
      "debounce", po::value<std::string>()->default_value("2000")->value_name("MS"),
      "watch: wait until nothing changed for MS milliseconds before building")(
      "debounce-max", po::value<std::string>()->default_value("30000")->value_name("MS"),
      "watch: build at the latest MS milliseconds after the first change, even if changes go "
      "on")("helper-timeout", po::value<std::string>()->default_value("60")->value_name("SECONDS"),
            "kill the initrd secrets tool, sbsign or sbverify (with its process group) when it "
            "runs longer than SECONDS (1 to 86400)")(
      "json", "print JSON (plan, list, verify, inspect)")("help,h", "show this help")(
      "version", "show the version");
  return visible;
}

// An option given on the command line (not a default value).
bool given(const po::variables_map& vm, const char* option) {
  return vm.count(option) && !vm[option].defaulted();
}

// The one rule for numeric option values: decimal digits only (no sign,
// space or unit), from `min` to `max`. Anything else, a value that would wrap
// among them, is a usage error naming the option.
std::uint64_t number_value(const po::variables_map& vm, const std::string& option,
                           std::uint64_t min, std::uint64_t max) {
  const std::string text = vm[option].as<std::string>();
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || error != std::errc() || stop != end || value < min || value > max) {
    throw UsageError{"--" + option + ": '" + text + "' is not a whole number from " +
                     std::to_string(min) + " to " + std::to_string(max)};
  }
  return value;
}

xbb::Verbosity verbosity_of(const Arguments& args) {
  xbb::Verbosity verbosity = xbb::Verbosity::normal;
  if (!args.empty() && !xbb::parse_verbosity(args.front(), verbosity)) {
    throw UsageError{"unknown verbosity '" + args.front() +
                     "': expected quiet, default, info or debug"};
  }
  return verbosity;
}

std::filesystem::path path_value(const po::variables_map& vm, const std::string& option) {
  const std::string path = vm[option].as<std::string>();
  if (path.empty()) throw UsageError{"--" + option + ": the path is empty"};
  return path;
}

// --esp (else $efiMountPoint), --xbootldr, --sign-cert and --helper-timeout:
// what verify reads too.
xbb::BuildOptions partition_options(const po::variables_map& vm) {
  xbb::BuildOptions options;
  if (vm.count("esp")) {
    options.esp = path_value(vm, "esp");
  } else if (const char* mount = std::getenv("efiMountPoint"); mount && *mount) {
    options.esp = mount;
  }
  if (vm.count("xbootldr")) options.xbootldr = path_value(vm, "xbootldr");
  if (vm.count("sign-cert")) options.sign_cert = vm["sign-cert"].as<std::string>();
  options.helper_timeout =
      std::chrono::seconds(number_value(vm, "helper-timeout", 1, kMaxHelperTimeout));
  return options;
}

// Every option of kBuildOptions, and --rebuild, checked against each other.
xbb::BuildOptions build_options(const po::variables_map& vm) {
  xbb::BuildOptions options = partition_options(vm);
  if (vm.count("extra-esp")) {
    for (const auto& extra : vm["extra-esp"].as<std::vector<std::string>>()) {
      if (extra.empty()) throw UsageError{"--extra-esp: the path is empty"};
      options.extra_esps.emplace_back(extra);
    }
  }
  // Absolute, so that host paths (in the record, in messages) do not depend
  // on the working folder.
  options.root = std::filesystem::absolute(vm["root"].as<std::string>());
  const std::string source = vm["source"].as<std::string>();
  if (source == "profiles") {
    options.source = xbb::Source::profiles;
  } else if (source != "entries") {
    throw UsageError{"unknown source '" + source + "': expected entries or profiles"};
  }
  options.lanzaboote = vm.count("lanzaboote") > 0;
  if (options.lanzaboote) options.source = xbb::Source::profiles;
  if (vm.count("layout")) {
    const std::string layout = vm["layout"].as<std::string>();
    if (layout != "auto") {
      options.layout = xbb::layout::parse_kind(layout);
      if (!options.layout) {
        throw UsageError{"unknown layout '" + layout +
                         "': expected auto, unified, shared or self-contained"};
      }
    }
  }
  const xbb::layout::Policy* asked =
      options.layout ? &xbb::layout::policy(*options.layout) : nullptr;
  if (options.source == xbb::Source::profiles && asked && !asked->embeds_kernel) {
    throw UsageError{
        "generations from the profiles have no kernel or initrd on the ESP to point at; they "
        "need --layout self-contained"};
  }
  if (vm.count("sign-key")) {
    if (!options.sign_cert) throw UsageError{"--sign-key needs --sign-cert"};
    if (asked && !asked->signable) {
      throw UsageError{
          "signing needs images that carry their configuration: --layout unified or "
          "self-contained"};
    }
    options.sign_key = vm["sign-key"].as<std::string>();
  } else if (options.sign_cert) {
    throw UsageError{"--sign-cert needs --sign-key (verify --sign-cert only checks)"};
  }
  if (vm.count("ucode")) {
    if (!xbb::layout::embeds_kernel(xbb::layout_request(options))) {
      throw UsageError{
          "--ucode: only self-contained images embed microcode (--layout self-contained, or "
          "signing)"};
    }
    options.ucode = vm["ucode"].as<std::string>();
  }
  options.keep_debug_sections = vm.count("keep-debug-sections") > 0;
  options.retarget_default = vm.count("no-default") == 0 && !options.lanzaboote;
  options.rebuild = vm.count("rebuild") > 0;
  return options;
}

// A one-shot run of the builder; with `document` (a JSON or list document on
// stdout), the reporter says nothing but errors.
xbb::RunResult run_once(const xbb::BuildOptions& options, xbb::Verbosity verbosity, bool document) {
  xbb::defer_stop_signals();
  xbb::Reporter reporter(document ? xbb::Verbosity::quiet : verbosity, std::cout, std::cerr,
                         xbb::colour_allowed(STDOUT_FILENO), xbb::colour_allowed(STDERR_FILENO));
  return xbb::run_build(options, reporter);
}

int build(const po::variables_map& vm, const Arguments& args) {
  const xbb::Verbosity verbosity = verbosity_of(args);
  return run_once(build_options(vm), verbosity, false).exit_status();
}

int plan(const po::variables_map& vm, const Arguments& args) {
  const xbb::Verbosity verbosity = verbosity_of(args);
  xbb::BuildOptions options = build_options(vm);
  options.dry_run = true;
  const bool json = vm.count("json") > 0;
  const xbb::RunResult result = run_once(options, verbosity, json);
  if (json) std::cout << xbb::json_text(xbb::plan_json(result), 2) << "\n";
  return result.exit_status();
}

int list(const po::variables_map& vm, const Arguments&) {
  xbb::BuildOptions options = build_options(vm);
  options.dry_run = true;
  const xbb::RunResult result = run_once(options, xbb::Verbosity::quiet, true);
  std::cout << (vm.count("json") ? xbb::json_text(xbb::list_json(result), 2) + "\n"
                                 : xbb::list_text(result));
  return result.error ? kExitFailure : 0;
}

int verify(const po::variables_map& vm, const Arguments&) {
  const xbb::BuildOptions options = partition_options(vm);
  xbb::defer_stop_signals();
  try {
    std::optional<xbb::SbsignSigner> checker;
    if (options.sign_cert)
      checker.emplace(std::nullopt, *options.sign_cert, options.helper_timeout);
    xbb::Partitions partitions(options.esp, options.xbootldr);
    xbb::PartitionLocks locks(
        partitions,
        [](const std::string& notice) { std::cerr << "xen-boot-builder: " << notice << "\n"; },
        xbb::EspLock::Mode::shared);
    std::vector<xbb::EspSnapshot> snapshots{
        xbb::read_snapshot(partitions.esp(), checker ? &*checker : nullptr)};
    if (partitions.separate())
      snapshots.push_back(xbb::read_snapshot(partitions.boot(), checker ? &*checker : nullptr));
    for (const auto& snapshot : snapshots) {
      for (const auto& note : snapshot.notes)
        std::cerr << "xen-boot-builder: note: " << note << "\n";
    }
    xbb::Verification result = xbb::verify_partitions(snapshots);
    std::cout << (vm.count("json") ? xbb::json_text(xbb::verify_json(result), 2) + "\n"
                                   : xbb::verify_text(result));
    return result.ok() ? 0 : kExitFailure;
  } catch (const xbb::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

int inspect(const po::variables_map& vm, const Arguments& args) {
  try {
    xbb::InspectReport report = xbb::inspect_file(args.front());
    std::cout << (vm.count("json") ? xbb::json_text(xbb::inspect_json(report), 2) + "\n"
                                   : report.text);
    return 0;
  } catch (const xbb::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

int watch(const po::variables_map& vm, const Arguments& args) {
  xbb::WatchOptions watch;
  watch.verbosity = verbosity_of(args);
  watch.debounce = std::chrono::milliseconds(number_value(vm, "debounce", 0, kMaxMilliseconds));
  watch.debounce_max =
      std::chrono::milliseconds(number_value(vm, "debounce-max", 0, kMaxMilliseconds));
  watch.build = build_options(vm);
  return xbb::watch(watch);
}

// Every verb: its positional arguments, the options it takes (any other is
// refused) and what runs it. Without a verb, the one argument is build's
// verbosity (the drop-in form of the script).
struct Verb {
  const char* name;
  Arity arity;
  std::uint32_t options;
  int (*run)(const po::variables_map&, const Arguments&);
};

constexpr Verb kVerbs[] = {
    {"build", Arity::verbosity, kBuildOptions | kRebuild, build},
    {"plan", Arity::verbosity, kBuildOptions | kRebuild | kJson, plan},
    {"list", Arity::none, kBuildOptions | kJson, list},
    {"verify", Arity::none, kEsp | kXbootldr | kSignCert | kHelperTimeout | kJson, verify},
    {"inspect", Arity::image, kJson, inspect},
    {"watch", Arity::verbosity, kBuildOptions | kDebounce | kDebounceMax, watch},
};

const Verb* find_verb(const std::string& word) {
  for (const Verb& verb : kVerbs) {
    if (word == verb.name) return &verb;
  }
  return nullptr;
}

// "a", "a and b", "a, b and c".
std::string spoken_list(const std::vector<std::string>& words) {
  std::string text;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) text += i + 1 == words.size() ? " and " : ", ";
    text += words[i];
  }
  return text;
}

// The first option given that `verb` does not take: "--json: only plan,
// list, verify and inspect print JSON, not build".
void refuse_options(const po::variables_map& vm, const Verb& verb) {
  for (const OptionRule& rule : kOptionRules) {
    if ((verb.options & rule.option) || !given(vm, rule.name)) continue;
    std::vector<std::string> takers;
    for (const Verb& other : kVerbs) {
      if (other.options & rule.option) takers.emplace_back(other.name);
    }
    throw UsageError{"--" + std::string(rule.name) + ": only " + spoken_list(takers) + " " +
                     (takers.size() == 1 ? rule.one_does : rule.several_do) + ", not " + verb.name};
  }
}

void check_arity(const Verb& verb, const Arguments& args, bool drop_in) {
  if (drop_in && args.size() != 1) {
    throw UsageError{"expected exactly one argument: quiet, default, info or debug", kExitFailure};
  }
  if (verb.arity == Arity::image && args.size() != 1) {
    throw UsageError{std::string(verb.name) + " takes one image file", kExitFailure};
  }
  if (args.size() > (verb.arity == Arity::none ? 0U : 1U)) {
    throw UsageError{"too many arguments for " + std::string(verb.name), kExitFailure};
  }
}

// The options each verb takes, for --help: from the table, so always true.
std::string options_by_verb() {
  std::string text = "Each command takes these options and refuses others:\n";
  for (const Verb& verb : kVerbs) {
    const std::string indent(11, ' ');
    std::string line = "  " + std::string(verb.name);
    line.resize(indent.size(), ' ');
    std::size_t width = line.size();
    for (const OptionRule& rule : kOptionRules) {
      if (!(verb.options & rule.option)) continue;
      const std::string word = "--" + std::string(rule.name);
      if (width + 1 + word.size() > 79 && width > indent.size()) {
        line += "\n" + indent;
        width = indent.size();
      } else if (width > indent.size()) {
        line += " ";
        ++width;
      }
      line += word;
      width += word.size();
    }
    text += line + "\n";
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  const po::options_description visible = visible_options();
  po::options_description hidden;
  hidden.add_options()("args", po::value<Arguments>());
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("args", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(e.what(), kExitUsage);
  }
  if (vm.count("help")) {
    std::cout << kUsage << visible << "\n"
              << options_by_verb() << "\n"
              << "Exit status: 0 on success; 1 when the default generation got no Xen\n"
                 "entry, the ESP (or an extra ESP) could not be updated, the run was\n"
                 "stopped by SIGTERM, SIGINT or SIGHUP, or the argument count is wrong;\n"
                 "2 for an unknown verbosity, option or option value (a number out of\n"
                 "range among them), or an option the command does not take.\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "xen-boot-builder " XBB_VERSION "\n";
    return 0;
  }

  Arguments args = vm.count("args") ? vm["args"].as<Arguments>() : Arguments{};
  const Verb* verb = args.empty() ? nullptr : find_verb(args.front());
  const bool drop_in = verb == nullptr;
  if (drop_in) {
    verb = find_verb("build");
  } else {
    args.erase(args.begin());
  }
  try {
    refuse_options(vm, *verb);
    check_arity(*verb, args, drop_in);
    return verb->run(vm, args);
  } catch (const UsageError& e) {
    return usage_error(e.message, e.status);
  }
}
