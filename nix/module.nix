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
# Lanzaboote never runs extraInstallCommands, and offers no hook of its own
# for others: its module sets boot.loader.external.installHook to its own
# script, which this module could only replace whole (and re-create for each
# Lanzaboote release). So with Lanzaboote the package's path unit runs
# xen-boot-builder --lanzaboote after every change of the system profiles
# (the daemon instead with watch.enable): it writes only EFI/xen and
# loader/entries/xen-*.conf, which Lanzaboote never touches, so the order of
# the two installers does not matter. Its images are self-contained (kernel
# and initrd inside) and signed with Lanzaboote's db key.
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
    types
    ;

  xen = config.virtualisation.xen;
  cfg = xen.bootBuilder;
  esp = config.boot.loader.efi.efiSysMountPoint;
  lanzaboote = (config.boot ? lanzaboote) && config.boot.lanzaboote.enable;

  signed = cfg.signing.keyFile != null && cfg.signing.certFile != null;

  # The options every run gets, before the subcommand.
  args =
    (if lanzaboote then [ "--lanzaboote" ] else [ "--layout" cfg.layout ])
    ++ lib.optionals signed [
      "--sign-key"
      (toString cfg.signing.keyFile)
      "--sign-cert"
      (toString cfg.signing.certFile)
    ]
    ++ cfg.extraArgs;

  # What a unit of the package runs here, with this machine's ESP.
  serviceFor = command: {
    environment.efiMountPoint = esp;
    unitConfig.RequiresMountsFor = [ esp ];
    serviceConfig = {
      ExecStart = [
        ""
        (utils.escapeSystemdExecArgs ([ (getExe cfg.package) ] ++ args ++ command))
      ];
      ReadWritePaths = [
        ""
        esp
      ];
    };
  };
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
        "self-contained"
      ];
      default = "unified";
      description = ''
        `unified`: one image per entry, xen.efi with its configuration inside.
        `shared`: one xen.efi per Xen build and a configuration file per
        entry, which takes far less room on the ESP. `self-contained`: one
        image per entry carrying its configuration, dom0's kernel and initrd:
        with signing, what Secure Boot needs, since Xen verifies no file it
        reads. With Lanzaboote the layout is always self-contained.
      '';
    };

    signing = {
      keyFile = mkOption {
        type = types.nullOr types.path;
        default = if lanzaboote then "${config.boot.lanzaboote.pkiBundle}/keys/db/db.key" else null;
        defaultText = literalExpression ''
          if Lanzaboote is enabled then "''${config.boot.lanzaboote.pkiBundle}/keys/db/db.key" else null
        '';
        description = ''
          Key (PEM) that signs every image, with sbsign, for Secure Boot. It
          is read in place, never copied. Set with certFile.
        '';
      };
      certFile = mkOption {
        type = types.nullOr types.path;
        default = if lanzaboote then "${config.boot.lanzaboote.pkiBundle}/keys/db/db.pem" else null;
        defaultText = literalExpression ''
          if Lanzaboote is enabled then "''${config.boot.lanzaboote.pkiBundle}/keys/db/db.pem" else null
        '';
        description = "Certificate (PEM) of signing.keyFile; each image is checked against it.";
      };
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
      systemd.packages = [ cfg.package ];
      assertions = [
        {
          assertion = (cfg.signing.keyFile == null) == (cfg.signing.certFile == null);
          message = "virtualisation.xen.bootBuilder.signing: set both keyFile and certFile, or neither.";
        }
      ];
    }

    (mkIf (!cfg.watch.enable && !lanzaboote) {
      # Run by systemd-boot's installer after it has written its entries, with
      # the ESP in efiMountPoint: the way the script was called.
      boot.loader.systemd-boot.extraInstallCommands = mkForce ''
        efiMountPoint=${escapeShellArg esp} \
          ${getExe cfg.package} ${escapeShellArgs args} ${cfg.verbosity}
      '';
    })

    (mkIf (!cfg.watch.enable && lanzaboote) {
      # The package's path unit and one-shot service, with a drop-in for this
      # machine: the ESP, the options, Lanzaboote's signing key.
      systemd.paths.xen-boot-builder-update.wantedBy = [ "multi-user.target" ];
      systemd.services.xen-boot-builder-update = serviceFor [ cfg.verbosity ];
    })

    (mkIf cfg.watch.enable {
      # The daemon does the work; systemd-boot's installer runs none of it.
      boot.loader.systemd-boot.extraInstallCommands = mkIf (!lanzaboote) (mkForce "");

      # The package's unit, with its sandbox, plus a drop-in for this machine
      # (serviceFor), and a reload command that exists on NixOS (systemd looks
      # the unit's plain `kill` up in /usr/bin and /bin, which NixOS does not
      # fill).
      systemd.services.xen-boot-builder = lib.recursiveUpdate (serviceFor [
        "watch"
        cfg.verbosity
      ]) {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecReload = [
          ""
          "${pkgs.coreutils}/bin/kill -HUP $MAINPID"
        ];
      };
    })
  ]);
}
