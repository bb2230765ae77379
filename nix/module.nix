# Replaces the shell script of NixOS's Xen module with xen-boot-builder.
# Import this module next to `virtualisation.xen.enable = true;`.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.virtualisation.xen;
  xen-boot-builder = pkgs.callPackage ./package.nix { };
  verbosity = cfg.boot.builderVerbosity or cfg.efi.bootBuilderVerbosity or "default";
in
{
  config = lib.mkIf cfg.enable {
    # systemd-boot runs this after writing its own entries, with
    # $efiMountPoint set, exactly as it ran the script.
    boot.loader.systemd-boot.extraInstallCommands = lib.mkForce ''
      efiMountPoint=${config.boot.loader.efi.efiSysMountPoint} \
        ${lib.getExe xen-boot-builder} ${verbosity}
    '';
    environment.systemPackages = [ xen-boot-builder ];
  };
}
