// Command line: parses arguments and calls into the library; nothing else.
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

const char* const kUsage =
    "Usage: xen-boot-builder [options] <quiet|default|info|debug>\n"
    "       xen-boot-builder [options] build|plan|watch [quiet|default|info|debug]\n"
    "       xen-boot-builder [options] list\n"
    "       xen-boot-builder [--esp DIR] [--json] verify\n"
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

struct Command {
  std::string name = "build";
  std::vector<std::string> args;
};

int usage_error(const std::string& message, int status) {
  std::cerr << "xen-boot-builder: " << message << "\n"
            << "Try 'xen-boot-builder --help'.\n";
  return status;
}

// The one rule for numeric option values: decimal digits only (no sign,
// space or unit), from `min` to `max`. Anything else, a value that would wrap
// among them, is a usage error naming the option: nullopt, with `why` set.
std::optional<std::uint64_t> number_value(const po::variables_map& vm, const std::string& option,
                                          std::uint64_t min, std::uint64_t max, std::string& why) {
  const std::string text = vm[option].as<std::string>();
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value);
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || error != std::errc() || stop != end || value < min || value > max) {
    why = "--" + option + ": '" + text + "' is not a whole number from " + std::to_string(min) +
          " to " + std::to_string(max);
    return std::nullopt;
  }
  return value;
}

// The longest wait a millisecond option takes: a day.
constexpr std::uint64_t kMaxMilliseconds = 24 * 60 * 60 * 1000;

bool is_command(const std::string& word) {
  return word == "build" || word == "plan" || word == "verify" || word == "inspect" ||
         word == "list" || word == "watch";
}

int inspect(const std::string& path, bool json) {
  try {
    xbb::InspectReport report = xbb::inspect_file(path);
    std::cout << (json ? xbb::json_text(xbb::inspect_json(report), 2) + "\n" : report.text);
    return 0;
  } catch (const xbb::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

int verify(const xbb::BuildOptions& options, std::chrono::seconds limit, bool json) {
  try {
    std::optional<xbb::SbsignSigner> checker;
    if (options.sign_cert) checker.emplace(std::nullopt, *options.sign_cert, limit);
    xbb::Partitions partitions(options.esp, options.xbootldr);
    xbb::PartitionLocks locks(
        partitions,
        [](const std::string& notice) { std::cerr << "xen-boot-builder: " << notice << "\n"; },
        xbb::EspLock::Mode::shared);
    std::vector<xbb::EspSnapshot> snapshots{
        xbb::read_snapshot(partitions.esp(), checker ? &*checker : nullptr)};
    if (partitions.separate())
      snapshots.push_back(xbb::read_snapshot(partitions.boot(), checker ? &*checker : nullptr));
    xbb::Verification result = xbb::verify_partitions(snapshots);
    std::cout << (json ? xbb::json_text(xbb::verify_json(result), 2) + "\n"
                       : xbb::verify_text(result));
    return result.ok() ? 0 : kExitFailure;
  } catch (const xbb::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace

int main(int argc, char** argv) {
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
  po::options_description hidden;
  hidden.add_options()("args", po::value<std::vector<std::string>>());
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
              << "Exit status: 0 on success; 1 when the default generation got no Xen\n"
                 "entry, the ESP (or an extra ESP) could not be updated, the run was\n"
                 "stopped by SIGTERM, SIGINT or SIGHUP, or the argument count is wrong;\n"
                 "2 for an unknown verbosity, option or option value (a number out of\n"
                 "range among them).\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "xen-boot-builder " XBB_VERSION "\n";
    return 0;
  }

  auto args =
      vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  Command command;
  std::string why;
  const auto helper_limit = number_value(vm, "helper-timeout", 1, kMaxHelperTimeout, why);
  if (!helper_limit) return usage_error(why, kExitUsage);
  if (!args.empty() && is_command(args.front())) {
    command.name = args.front();
    command.args.assign(args.begin() + 1, args.end());
    if (vm.count("rebuild") && command.name != "build" && command.name != "plan") {
      return usage_error("--rebuild: only build and plan write images", kExitUsage);
    }
    if (command.name == "inspect") {
      if (!vm["helper-timeout"].defaulted()) {
        return usage_error("--helper-timeout: inspect runs no other program", kExitUsage);
      }
      if (command.args.size() != 1)
        return usage_error("inspect takes one image file", kExitFailure);
      return inspect(command.args.front(), vm.count("json") > 0);
    }
    const bool takes_verbosity = command.name != "verify" && command.name != "list";
    if (command.args.size() > (takes_verbosity ? 1u : 0u)) {
      return usage_error("too many arguments for " + command.name, kExitFailure);
    }
  } else {
    if (args.size() != 1) {
      return usage_error("expected exactly one argument: quiet, default, info or debug",
                         kExitFailure);
    }
    command.args = args;
  }

  const bool json = vm.count("json") > 0;
  if (json && command.name != "plan" && command.name != "list" && command.name != "verify") {
    return usage_error("--json: only plan, list, verify and inspect print JSON", kExitUsage);
  }
  for (const char* option : {"debounce", "debounce-max"}) {
    if (!vm[option].defaulted() && command.name != "watch") {
      return usage_error("--" + std::string(option) + ": only watch waits for changes", kExitUsage);
    }
  }
  const auto debounce = number_value(vm, "debounce", 0, kMaxMilliseconds, why);
  if (!debounce) return usage_error(why, kExitUsage);
  const auto debounce_max = number_value(vm, "debounce-max", 0, kMaxMilliseconds, why);
  if (!debounce_max) return usage_error(why, kExitUsage);

  xbb::Verbosity verbosity = xbb::Verbosity::normal;
  if (!command.args.empty() && !xbb::parse_verbosity(command.args.front(), verbosity)) {
    return usage_error(
        "unknown verbosity '" + command.args.front() + "': expected quiet, default, info or debug",
        kExitUsage);
  }

  xbb::BuildOptions options;
  if (vm.count("esp")) {
    options.esp = vm["esp"].as<std::string>();
    if (options.esp.empty()) return usage_error("--esp: the path is empty", kExitUsage);
  } else if (const char* mount = std::getenv("efiMountPoint"); mount && *mount) {
    options.esp = mount;
  }
  if (vm.count("xbootldr")) {
    options.xbootldr = vm["xbootldr"].as<std::string>();
    if (options.xbootldr->empty()) return usage_error("--xbootldr: the path is empty", kExitUsage);
  }
  if (vm.count("extra-esp")) {
    if (command.name == "verify") {
      return usage_error("--extra-esp: verify checks one ESP; run it on each", kExitUsage);
    }
    for (const auto& extra : vm["extra-esp"].as<std::vector<std::string>>()) {
      if (extra.empty()) return usage_error("--extra-esp: the path is empty", kExitUsage);
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
    return usage_error("unknown source '" + source + "': expected entries or profiles", kExitUsage);
  }
  options.lanzaboote = vm.count("lanzaboote") > 0;
  if (options.lanzaboote) options.source = xbb::Source::profiles;
  if (vm.count("layout")) {
    const std::string layout = vm["layout"].as<std::string>();
    if (layout != "auto") {
      options.layout = xbb::layout::parse_kind(layout);
      if (!options.layout) {
        return usage_error(
            "unknown layout '" + layout + "': expected auto, unified, shared or self-contained",
            kExitUsage);
      }
    }
  }
  const xbb::layout::Policy* asked =
      options.layout ? &xbb::layout::policy(*options.layout) : nullptr;
  if (options.source == xbb::Source::profiles && asked && !asked->embeds_kernel) {
    return usage_error(
        "generations from the profiles have no kernel or initrd on the ESP to point at; they "
        "need --layout self-contained",
        kExitUsage);
  }
  if (vm.count("sign-cert")) options.sign_cert = vm["sign-cert"].as<std::string>();
  options.helper_timeout = std::chrono::seconds(*helper_limit);
  if (command.name != "watch") xbb::defer_stop_signals();
  if (command.name == "verify") {
    return verify(options, options.helper_timeout, json);
  }
  if (vm.count("sign-key")) {
    if (!options.sign_cert) return usage_error("--sign-key needs --sign-cert", kExitUsage);
    if (asked && !asked->signable) {
      return usage_error(
          "signing needs images that carry their configuration: --layout unified or "
          "self-contained",
          kExitUsage);
    }
    options.sign_key = vm["sign-key"].as<std::string>();
  } else if (options.sign_cert) {
    return usage_error("--sign-cert needs --sign-key (verify --sign-cert only checks)", kExitUsage);
  }
  if (vm.count("ucode")) {
    if (!xbb::layout::embeds_kernel(xbb::layout_request(options))) {
      return usage_error(
          "--ucode: only self-contained images embed microcode (--layout self-contained, or "
          "signing)",
          kExitUsage);
    }
    options.ucode = vm["ucode"].as<std::string>();
  }
  options.keep_debug_sections = vm.count("keep-debug-sections") > 0;
  options.retarget_default = vm.count("no-default") == 0 && !options.lanzaboote;
  options.rebuild = vm.count("rebuild") > 0;
  if (command.name == "watch") {
    xbb::WatchOptions watch;
    watch.build = options;
    watch.verbosity = verbosity;
    watch.debounce = std::chrono::milliseconds(*debounce);
    watch.debounce_max = std::chrono::milliseconds(*debounce_max);
    return xbb::watch(watch);
  }
  options.dry_run = command.name == "plan" || command.name == "list";

  // With --json (and for list) stdout carries only the document; errors go to
  // stderr.
  const bool document = json || command.name == "list";
  xbb::Reporter reporter(document ? xbb::Verbosity::quiet : verbosity, std::cout, std::cerr,
                         xbb::colour_allowed(STDOUT_FILENO), xbb::colour_allowed(STDERR_FILENO));
  const xbb::RunResult result = xbb::run_build(options, reporter);
  if (command.name == "list") {
    std::cout << (json ? xbb::json_text(xbb::list_json(result), 2) + "\n" : xbb::list_text(result));
    return result.error ? kExitFailure : 0;
  }
  if (json) std::cout << xbb::json_text(xbb::plan_json(result), 2) << "\n";
  return result.exit_status();
}
