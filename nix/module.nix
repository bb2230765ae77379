# Makes NixOS's Xen module install its boot entries with xen-boot-builder
# instead of its shell script. Import it next to `virtualisation.xen.enable`;
# the options are under virtualisation.xen.boot (builderVerbosity, and
# builder.*: see nixpkgs/nixos/modules/virtualisation/xen/boot.nix).
#
# The boot partitions come from NixOS's own options: the ESP from
# boot.loader.efi.efiSysMountPoint, an Extended Boot Loader partition from
# boot.loader.systemd-boot.xbootldrMountPoint (--xbootldr: the Xen entries and
# images go there, next to systemd-boot's), and with Lanzaboote its mirrored
# ESPs from boot.lanzaboote.extraEfiSysMountPoints (one --extra-esp each, in
# their order). Every run gets them, and the units below may write to each
# (ReadWritePaths) and wait for its mount (RequiresMountsFor).
#
# How the script is replaced: nixpkgs' Xen module (virtualisation/xen/boot.nix)
# calls its script from boot.loader.systemd-boot.extraInstallCommands, a
# `lines` option whose definitions are concatenated. A definition cannot be
# taken out of it, only outranked, and outranking it (mkForce) drops every
# other definition too: a user's own commands, another module's. So this
# module disables nixpkgs' boot.nix (disabledModules) and imports in its
# place ./nixpkgs/nixos/modules/virtualisation/xen/boot.nix: the same module
# with the change proposed to nixpkgs (./nixpkgs/xen-boot.patch) applied,
# which declares the same options and bootspec extensions and calls this
# package at normal priority (mkBefore: first among the extra commands).
# The tests (tests/nix) check that the patch applied to nixpkgs' boot.nix
# gives exactly that file, so a change of nixpkgs' module shows up as a
# failing test, and evaluate both with nixpkgs' lib.evalModules. The other
# ways were worse: an `apply` on extraInstallCommands would have to cut the
# script's line out of the merged text; mkForce drops others' commands.
#
# Lanzaboote never runs extraInstallCommands and owns
# boot.loader.external.installHook, so with Lanzaboote the package's path
# unit runs xen-boot-builder --lanzaboote after every change of the system
# profiles, that is after the switch (the daemon instead with watch.enable).
# Shutdown waits for that run: xen-boot-builder-update.service is ordered
# Before= xen-boot-builder-shutdown.service, a unit that is active from boot
# on and whose ExecStop runs xen-boot-builder once more. Units stop in the
# reverse of their start order, so at shutdown this run comes first, waits
# for the ESP lock of a run under way, and only then is the update service
# stopped (a run of it that a shutdown would kill has finished by then);
# both are ordered after the mounts of the boot partitions (RequiresMountsFor),
# so both finish before those are unmounted. `nixos-rebuild boot` followed at
# once by `reboot` therefore leaves the new generation with its Xen entry,
# even when the path unit had not yet started its run.
{ lib, pkgs, ... }:

let
  old = [
    "virtualisation"
    "xen"
    "bootBuilder"
  ];
  new = [
    "virtualisation"
    "xen"
    "boot"
    "builder"
  ];
  renamed = path: lib.mkRenamedOptionModule (old ++ path) (new ++ path);
in
{
  disabledModules = [ "virtualisation/xen/boot.nix" ];

  imports = [
    ./nixpkgs/nixos/modules/virtualisation/xen/boot.nix
    # The names of this module's options before they took nixpkgs' form.
    (lib.mkRemovedOptionModule (old ++ [ "enable" ]) ''
      xen-boot-builder installs the Xen entries whenever virtualisation.xen.enable
      is set and this module is imported.
    '')
    (lib.mkRenamedOptionModule (old ++ [ "verbosity" ]) [
      "virtualisation"
      "xen"
      "boot"
      "builderVerbosity"
    ])
    (renamed [ "package" ])
    (renamed [ "layout" ])
    (renamed [ "signing" "keyFile" ])
    (renamed [ "signing" "certFile" ])
    (renamed [ "extraArgs" ])
    (renamed [ "watch" "enable" ])
  ];

  # Until nixpkgs has the package: this repository's.
  virtualisation.xen.boot.builder.package = lib.mkDefault (pkgs.callPackage ./package.nix { });
}
