# Evaluates a NixOS-like configuration with nixpkgs' lib.evalModules and
# returns what the tests assert on, as plain data for --json.
#   shared:  ../shared (nixpkgs' lib, and its modules as modulesPath)
#   modules: the Xen modules under test (nixpkgs' boot.nix, this project's
#            module, or boot.nix with the upstream patch applied)
#   config:  the machine's configuration, a module
{
  shared,
  modules,
  config,
}:

let
  lib = import (shared + "/nixpkgs/lib");
  modulesPath = shared + "/nixpkgs/nixos/modules";
  eval = lib.evalModules {
    specialArgs = { inherit modulesPath; };
    modules = [
      ./nixos.nix
      config
    ]
    ++ modules;
  };
  c = eval.config;

  unit =
    u:
    {
      inherit (u)
        description
        wantedBy
        wants
        requires
        after
        before
        conflicts
        unitConfig
        ;
    }
    // lib.optionalAttrs (u ? serviceConfig) { inherit (u) serviceConfig environment; };

  # What nixpkgs' Xen module declares: its own options and renamed ones
  # (not xen.enable and xen.package, from the test's NixOS, nor the
  # xen-boot-builder options that the patch adds).
  xenOptions = lib.mapAttrsRecursiveCond (a: !lib.isOption a) (_: o: {
    type = o.type.description;
    default = o.default or null;
    visible = o.visible or true;
  }) (removeAttrs eval.options.virtualisation.xen [ "enable" "package" "bootBuilder" ]);
in
{
  extraInstallCommands = c.boot.loader.systemd-boot.extraInstallCommands;
  services = lib.mapAttrs (_: unit) c.systemd.services;
  paths = lib.mapAttrs (_: unit) c.systemd.paths;
  packages = map (p: p.name) c.systemd.packages;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  inherit (c) warnings;
  lanzabooteSettings = if c.boot.lanzaboote.enable then c.boot.lanzaboote.settings else null;
  bootspec = c.boot.bootspec.extensions;
  xenOptions = xenOptions // {
    boot = removeAttrs xenOptions.boot [ "builder" ];
  };
}
