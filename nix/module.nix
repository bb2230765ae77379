# Makes NixOS's Xen module install its boot entries with xen-boot-builder
# instead of its shell script. Import it next to `virtualisation.xen.enable`.
#
# How the script is replaced: NixOS's Xen module (xen-dom0.nix, later
# xen/efi.nix, now xen/boot.nix) calls its script from
# boot.loader.systemd-boot.extraInstallCommands, an option whose definitions
# are concatenated. A definition cannot be removed from it, only outranked,
# so this module defines it with lib.mkForce. disabledModules would drop the
# script's module whole, and with it the options and the bootspec extension
# it declares (params, verbosity, xen.efi path), which this module would then
# have to copy for each NixOS release. The cost of mkForce: other definitions
# at normal priority are dropped too. Commands of your own that must run after
# systemd-boot's installer are kept if you define them with lib.mkForce as
# well: definitions of equal priority are concatenated.
#
# Lanzaboote never runs extraInstallCommands: there, enable the daemon
# (watch.enable) with extraArgs = [ "--source" "profiles" ].
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:

let
  inherit (lib)
    escapeShellArg
    escapeShellArgs
    getExe
    literalExpression
    mkEnableOption
    mkForce
    mkIf
    mkMerge
    mkOption
    optional
    types
    ;

  xen = config.virtualisation.xen;
  cfg = xen.bootBuilder;
  esp = config.boot.loader.efi.efiSysMountPoint;
  lanzaboote = (config.boot ? lanzaboote) && config.boot.lanzaboote.enable;

  # The options every run gets, before the subcommand.
  args = [
    "--layout"
    cfg.layout
  ]
  ++ cfg.extraArgs;
in
{
  options.virtualisation.xen.bootBuilder = {
    enable = mkOption {
      type = types.bool;
      default = xen.enable;
      defaultText = literalExpression "config.virtualisation.xen.enable";
      description = ''
        Whether Xen's boot entries are installed by xen-boot-builder instead
        of the Xen module's shell script.
      '';
    };

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The xen-boot-builder package.";
    };

    verbosity = mkOption {
      type = types.enum [
        "quiet"
        "default"
        "info"
        "debug"
      ];
      # The Xen module's own verbosity option: boot.builderVerbosity in
      # current NixOS, efi.bootBuilderVerbosity before.
      default = xen.boot.builderVerbosity or xen.efi.bootBuilderVerbosity or "default";
      defaultText = literalExpression "config.virtualisation.xen.boot.builderVerbosity";
      description = ''
        What a run prints: `quiet` errors only, `default` one line and
        warnings, `info` also each entry added, removed or changed, `debug`
        every step.
      '';
    };

    layout = mkOption {
      type = types.enum [
        "unified"
        "shared"
      ];
      default = "unified";
      description = ''
        `unified`: one image per entry, xen.efi with its configuration inside
        (what Secure Boot needs). `shared`: one xen.efi per Xen build and a
        configuration file per entry, which takes far less room on the ESP.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--source"
        "profiles"
      ];
      description = "More command line options for every run (see xen-boot-builder(1)).";
    };

    watch.enable = mkEnableOption ''
      the xen-boot-builder daemon (xen-boot-builder.service), which rebuilds
      the entries whenever generations change, instead of a run from
      systemd-boot's installer. Entries then appear shortly after a switch
      rather than during it'';
  };

  config = mkIf cfg.enable (mkMerge [
    {
      environment.systemPackages = [ cfg.package ];
      warnings = optional (lanzaboote && !cfg.watch.enable) ''
        Lanzaboote never runs systemd-boot's extraInstallCommands, so
        xen-boot-builder does not run: set
        virtualisation.xen.bootBuilder.watch.enable = true and
        virtualisation.xen.bootBuilder.extraArgs = [ "--source" "profiles" ].
      '';
    }

    (mkIf (!cfg.watch.enable) {
      # Run by systemd-boot's installer after it has written its entries, with
      # the ESP in efiMountPoint: the way the script was called.
      boot.loader.systemd-boot.extraInstallCommands = mkForce ''
        efiMountPoint=${escapeShellArg esp} \
          ${getExe cfg.package} ${escapeShellArgs args} ${cfg.verbosity}
      '';
    })

    (mkIf cfg.watch.enable {
      # The daemon does the work; systemd-boot's installer runs none of it.
      boot.loader.systemd-boot.extraInstallCommands = mkForce "";

      # The package's unit, with its sandbox, plus a drop-in for this machine:
      # the ESP to use and write, the options, and a reload command that exists
      # on NixOS (systemd looks the unit's plain `kill` up in /usr/bin and
      # /bin, which NixOS does not fill).
      systemd.packages = [ cfg.package ];
      systemd.services.xen-boot-builder = {
        wantedBy = [ "multi-user.target" ];
        environment.efiMountPoint = esp;
        unitConfig.RequiresMountsFor = [ esp ];
        serviceConfig = {
          ExecStart = [
            ""
            (utils.escapeSystemdExecArgs ([ (getExe cfg.package) ] ++ args ++ [ "watch" cfg.verbosity ]))
          ];
          ExecReload = [
            ""
            "${pkgs.coreutils}/bin/kill -HUP $MAINPID"
          ];
          ReadWritePaths = [
            ""
            esp
          ];
        };
      };
    })
  ]);
}
