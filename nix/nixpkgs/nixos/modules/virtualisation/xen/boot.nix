# Xen Project Hypervisor EFI support.
{
  config,
  lib,
  options,
  pkgs,
  utils,
  ...
}:

let
  inherit (lib)
    concatLists
    concatMap
    getExe
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkMerge
    mkOption
    mkPackageOption
    mkRenamedOptionModule
    optional
    optionals
    types
    unique
    ;
  inherit (types)
    enum
    path
    listOf
    str
    ;

  cfg = config.virtualisation.xen;
  builder = cfg.boot.builder;
  esp = config.boot.loader.efi.efiSysMountPoint;
  lanzaboote = (config.boot ? lanzaboote) && config.boot.lanzaboote.enable;
  signed = builder.signing.keyFile != null && builder.signing.certFile != null;
  # The Extended Boot Loader partition: systemd-boot's entries and kernels,
  # and so the Xen files, are there; loader.conf stays on the ESP.
  xbootldr = config.boot.loader.systemd-boot.xbootldrMountPoint;
  # Lanzaboote's mirrored ESPs, which get the same Xen entries.
  extraEsps = optionals lanzaboote config.boot.lanzaboote.extraEfiSysMountPoints;
  # Every partition a run writes to.
  partitions = unique ([ esp ] ++ optional (xbootldr != null) xbootldr ++ extraEsps);

  # xen-boot-builder's options, before the verbosity (or `watch`). One line
  # per option.
  builderArgs = concatLists [
    (if lanzaboote then [ "--lanzaboote" ] else [ "--layout" builder.layout ])
    (optionals (xbootldr != null) [ "--xbootldr" xbootldr ])
    (concatMap (dir: [ "--extra-esp" dir ]) extraEsps)
    [ "--helper-timeout" (toString builder.helperTimeout) ]
    (optionals signed [ "--sign-key" (toString builder.signing.keyFile) ])
    (optionals signed [ "--sign-cert" (toString builder.signing.certFile) ])
    builder.extraArgs
  ];
  builderCommand = command: [ (getExe builder.package) ] ++ builderArgs ++ command;

  # A drop-in for one of the package's units: this machine's boot partitions
  # (the only writable paths) and options.
  builderService = command: {
    environment.efiMountPoint = esp;
    unitConfig.RequiresMountsFor = partitions;
    serviceConfig = {
      ExecStart = [
        ""
        (utils.escapeSystemdExecArgs (builderCommand command))
      ];
      ReadWritePaths = [ "" ] ++ partitions;
    };
  };
in
{
  imports = [
    (mkRenamedOptionModule
      [
        "virtualisation"
        "xen"
        "efi"
        "bootBuilderVerbosity"
      ]
      [
        "virtualisation"
        "xen"
        "boot"
        "builderVerbosity"
      ]
    )
    (mkRenamedOptionModule
      [
        "virtualisation"
        "xen"
        "bootParams"
      ]
      [
        "virtualisation"
        "xen"
        "boot"
        "params"
      ]
    )
    (mkRenamedOptionModule
      [
        "virtualisation"
        "xen"
        "efi"
        "path"
      ]
      [
        "virtualisation"
        "xen"
        "boot"
        "efi"
        "path"
      ]
    )
  ];

  ## Interface ##

  options.virtualisation.xen.boot = {
    params = mkOption {
      default = [ ];
      example = ''
        [
          "iommu=force:true,qinval:true,debug:true"
          "noreboot=true"
          "vga=ask"
        ]
      '';
      type = listOf str;
      description = ''
        Xen Command Line parameters passed to Domain 0 at boot time.
        Note: these are different from `boot.kernelParams`. See
        the [Xen documentation](https://xenbits.xenproject.org/docs/unstable/misc/xen-command-line.html) for more information.
      '';
    };
    builderVerbosity = mkOption {
      type = enum [
        "default"
        "info"
        "debug"
        "quiet"
      ];
      default = "default";
      example = "info";
      description = ''
        What `xen-boot-builder` prints when it installs the Xen boot entries:

        - `quiet`: errors only.

        - `default`: one line, and warnings.

        - `info`: also each entry added, removed or changed.

        - `debug`: every step.
      '';
    };
    bios = {
      path = mkOption {
        type = path;
        default = "${cfg.package.boot}/${cfg.package.multiboot}";
        defaultText = literalExpression "\${config.virtualisation.xen.package.boot}/\${config.virtualisation.xen.package.multiboot}";
        example = literalExpression "\${config.virtualisation.xen.package}/boot/xen-\${config.virtualisation.xen.package.version}";
        description = ''
          Path to the Xen `multiboot` binary used for BIOS booting.
          Unless you're building your own Xen derivation, you should leave this
          option as the default value.
        '';
      };
    };
    efi = {
      path = mkOption {
        type = path;
        default = "${cfg.package.boot}/${cfg.package.efi}";
        defaultText = literalExpression "\${config.virtualisation.xen.package.boot}/\${config.virtualisation.xen.package.efi}";
        example = literalExpression "\${config.virtualisation.xen.package}/boot/efi/efi/nixos/xen-\${config.virtualisation.xen.package.version}.efi";
        description = ''
          Path to xen.efi. `pkgs.xen` is patched to install the xen.efi file
          on `$boot/boot/xen.efi`, but an unpatched Xen build may install it
          somewhere else, such as `$out/boot/efi/efi/nixos/xen.efi`. Unless
          you're building your own Xen derivation, you should leave this
          option as the default value.
        '';
      };
    };
    builder = {
      package = mkPackageOption pkgs "xen-boot-builder" { };

      layout = mkOption {
        type = enum [
          "auto"
          "unified"
          "shared"
          "self-contained"
        ];
        default = "auto";
        description = ''
          How the Xen entries are laid out on the ESP. `auto`: for each
          entry what it needs, `self-contained` when signing (and always with
          Lanzaboote), `unified` for a `xen.efi` that carries a `.config` of
          its own, else `shared`. `unified`: one image per entry, `xen.efi`
          with its configuration inside. `shared`: one `xen.efi` per Xen
          build and a configuration file per entry, which takes far less
          room. `self-contained`: one image per entry that also carries
          dom0's kernel and initrd; signed, this is what Secure Boot needs,
          since Xen verifies no file it reads.
        '';
      };

      helperTimeout = mkOption {
        type = types.ints.positive;
        default = 60;
        description = ''
          Seconds a helper program started by `xen-boot-builder` (such as
          `sbsign`) may run before it is stopped and the run fails.
        '';
      };

      signing = {
        keyFile = mkOption {
          type = types.nullOr types.path;
          default = if lanzaboote then config.boot.lanzaboote.privateKeyFile else null;
          defaultText = literalExpression "if config.boot.lanzaboote.enable then config.boot.lanzaboote.privateKeyFile else null";
          description = ''
            Key (PEM) that signs every Xen image for Secure Boot, read in place
            and never copied. Set together with `certFile`.
          '';
        };
        certFile = mkOption {
          type = types.nullOr types.path;
          default = if lanzaboote then config.boot.lanzaboote.publicKeyFile else null;
          defaultText = literalExpression "if config.boot.lanzaboote.enable then config.boot.lanzaboote.publicKeyFile else null";
          description = "Certificate (PEM) of `keyFile`; every signed image is checked against it.";
        };
      };

      extraArgs = mkOption {
        type = listOf str;
        default = [ ];
        example = [
          "--ucode"
          "/boot/intel-ucode.img"
        ];
        description = "More command line options for every run of `xen-boot-builder`.";
      };

      watch.enable = mkEnableOption ''
        the `xen-boot-builder` daemon, which rebuilds the Xen entries whenever
        the generations change, instead of a run at install time'';
    };
  };

  ## Implementation ##

  config = mkIf cfg.enable (
    mkMerge (
      [
        {
          assertions = [
            {
              assertion =
                config.boot.loader.systemd-boot.enable
                || (config.boot ? lanzaboote) && config.boot.lanzaboote.enable
                || config.boot.loader.limine.enable;
              message = "Xen only supports booting on systemd-boot, Lanzaboote or Limine.";
            }
            {
              assertion = config.boot.initrd.systemd.enable;
              message = "Xen does not support the legacy script-based Stage 1 initrd.";
            }
            {
              assertion = (builder.signing.keyFile == null) == (builder.signing.certFile == null);
              message = "virtualisation.xen.boot.builder.signing: set both keyFile and certFile, or neither.";
            }
            {
              assertion = lanzaboote -> builtins.elem builder.layout [ "auto" "self-contained" ];
              message = "virtualisation.xen.boot.builder.layout: Lanzaboote's Xen entries are always self-contained; leave layout unset.";
            }
            {
              assertion = builder.watch.enable -> config.boot.loader.systemd-boot.enable || lanzaboote;
              message = "virtualisation.xen.boot.builder.watch.enable: the daemon writes systemd-boot entries; enable systemd-boot or Lanzaboote.";
            }
          ];

          # Xen Bootspec extension. This extension allows NixOS bootloaders to
          # fetch the dom0 kernel paths and access the `cfg.boot.params` option.
          boot.bootspec.extensions = {
            # Bootspec extension v1 is deprecated, and will be removed in 26.05
            # It is present for backwards compatibility
            "org.xenproject.bootspec.v1" = {
              xen = cfg.boot.efi.path;
              xenParams = cfg.boot.params;
            };
            # Bootspec extension v2 includes more detail,
            # including supporting multiboot, and is the current supported
            # bootspec extension
            "org.xenproject.bootspec.v2" = {
              efiPath = cfg.boot.efi.path;
              multibootPath = cfg.boot.bios.path;
              version = cfg.package.version;
              params = cfg.boot.params;
            };
          };

          environment.systemPackages = [ builder.package ];
          systemd.packages = [ builder.package ];
        }

        (mkIf (!builder.watch.enable && !lanzaboote) {
          # Run after systemd-boot's installer has written its entries. mkBefore:
          # before other extra commands, which may copy the ESP elsewhere.
          boot.loader.systemd-boot.extraInstallCommands = lib.mkBefore ''
            efiMountPoint=${lib.escapeShellArg esp} ${lib.escapeShellArgs (builderCommand [ cfg.boot.builderVerbosity ])}
          '';
        })

        (mkIf (!builder.watch.enable && lanzaboote) {
          # Lanzaboote runs no extraInstallCommands and owns
          # boot.loader.external.installHook. The package's path unit starts a
          # run after every change of the system profiles, that is after the
          # switch. The run writes only EFI/xen and loader/entries/xen-*.conf,
          # which Lanzaboote leaves alone.
          systemd.paths.xen-boot-builder-update.wantedBy = [ "multi-user.target" ];
          systemd.services.xen-boot-builder-update = builderService [ cfg.boot.builderVerbosity ] // {
            # Shutdown waits for the run: see xen-boot-builder-shutdown.
            before = [ "xen-boot-builder-shutdown.service" ];
          };

          # `nixos-rebuild boot && reboot`: the path unit's run may still be
          # under way, or not yet started, when the shutdown begins, and stopping
          # it kills it. Stopping this unit runs xen-boot-builder once more, with
          # the boot partitions still mounted (RequiresMountsFor orders its stop
          # before their unmount), and the update service, ordered before this
          # unit, is stopped only after that run: a run under way finishes first
          # (this run waits for its lock on the ESP).
          systemd.services.xen-boot-builder-shutdown = {
            description = "Install Xen boot entries before shutdown";
            wantedBy = [ "multi-user.target" ];
            environment.efiMountPoint = esp;
            unitConfig.RequiresMountsFor = partitions;
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStop = utils.escapeSystemdExecArgs (builderCommand [ cfg.boot.builderVerbosity ]);
              TimeoutStopSec = "5min";
              ProtectSystem = "strict";
              ReadWritePaths = partitions;
              ProtectHome = true;
              PrivateTmp = true;
              PrivateNetwork = true;
              NoNewPrivileges = true;
              CapabilityBoundingSet = "";
            };
          };
        })

        (mkIf builder.watch.enable {
          # The package's daemon and its sandbox; a reload command that exists
          # on NixOS (the unit's plain `kill` is looked up in /usr/bin and /bin).
          systemd.services.xen-boot-builder = lib.recursiveUpdate (builderService [
            "watch"
            cfg.boot.builderVerbosity
          ]) {
            wantedBy = [ "multi-user.target" ];
            serviceConfig.ExecReload = [
              ""
              "${pkgs.coreutils}/bin/kill -HUP $MAINPID"
            ];
          };
        })
      ]
      # Boot Xen by default; overridable.
      ++ lib.optional (options.boot ? lanzaboote) (
        mkIf lanzaboote { boot.lanzaboote.settings.default = mkDefault "xen-*"; }
      )
    )
  );
}
