// Command line: parses arguments and calls into the library; nothing else.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "xbb/builder.hpp"
#include "xbb/report.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* const kUsage =
    "Usage: xen-boot-builder [options] <quiet|default|info|debug>\n"
    "       xen-boot-builder [options] build|plan [quiet|default|info|debug]\n"
    "\n"
    "Installs Xen boot entries on the EFI System Partition for every NixOS\n"
    "generation whose bootspec carries the Xen extension.\n"
    "\n"
    "Commands:\n"
    "  build        write the Xen entries and images (the default)\n"
    "  plan         show what build would change; write nothing\n"
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

bool is_command(const std::string& word) { return word == "build" || word == "plan"; }

}  // namespace

int main(int argc, char** argv) {
  po::options_description visible("Options");
  visible.add_options()
      ("esp", po::value<std::string>()->value_name("DIR"),
       "ESP mount point (default: $efiMountPoint, else /boot)")
      ("root", po::value<std::string>()->default_value("/")->value_name("DIR"),
       "treat /nix/... paths as under DIR")
      ("source", po::value<std::string>()->default_value("entries")->value_name("KIND"),
       "where generations come from: 'entries' (systemd-boot's loader/entries/nixos-*.conf) "
       "or 'profiles' (/nix/var/nix/profiles, for Lanzaboote)")
      ("no-default", "leave loader/loader.conf alone")
      ("help,h", "show this help")
      ("version", "show the version");
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
                 "entry, the ESP could not be updated, or the argument count is wrong;\n"
                 "2 for an unknown verbosity or option.\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "xen-boot-builder " XBB_VERSION "\n";
    return 0;
  }

  auto args = vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  Command command;
  if (!args.empty() && is_command(args.front())) {
    command.name = args.front();
    command.args.assign(args.begin() + 1, args.end());
    if (command.args.size() > 1) return usage_error(command.name + " takes at most one verbosity", kExitFailure);
  } else {
    if (args.size() != 1) {
      return usage_error("expected exactly one argument: quiet, default, info or debug",
                         kExitFailure);
    }
    command.args = args;
  }

  xbb::Verbosity verbosity = xbb::Verbosity::normal;
  if (!command.args.empty() && !xbb::parse_verbosity(command.args.front(), verbosity)) {
    return usage_error("unknown verbosity '" + command.args.front() +
                           "': expected quiet, default, info or debug",
                       kExitUsage);
  }

  xbb::BuildOptions options;
  if (vm.count("esp")) {
    options.esp = vm["esp"].as<std::string>();
  } else if (const char* mount = std::getenv("efiMountPoint"); mount && *mount) {
    options.esp = mount;
  }
  options.root = vm["root"].as<std::string>();
  const std::string source = vm["source"].as<std::string>();
  if (source == "profiles") {
    options.source = xbb::Source::profiles;
  } else if (source != "entries") {
    return usage_error("unknown source '" + source + "': expected entries or profiles", kExitUsage);
  }
  options.retarget_default = vm.count("no-default") == 0;
  options.dry_run = command.name == "plan";

  xbb::Reporter reporter(verbosity, std::cout, std::cerr, xbb::colour_allowed(STDOUT_FILENO),
                         xbb::colour_allowed(STDERR_FILENO));
  return xbb::run_build(options, reporter);
}
