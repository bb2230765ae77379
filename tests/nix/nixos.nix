# The NixOS options that nixpkgs' Xen module and xen-boot-builder's module
# read or define, declared with the types NixOS (and Lanzaboote's module)
# gives them, for evaluating those modules with lib.evalModules without the
# rest of NixOS. Packages are stand-ins: derivation-shaped sets with a store
# path, never built. `utils` offers the one function the modules use.
{ config, lib, ... }:

let
  inherit (lib) mkOption types;

  package = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };

  # systemd's unit option type: lists from several definitions are
  # concatenated (ExecStart = [ "" cmd ] resets), other values must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };
  unitNames = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  unitOptions = {
    description = mkOption {
      type = types.singleLineStr;
      default = "";
    };
    wantedBy = unitNames;
    requiredBy = unitNames;
    wants = unitNames;
    requires = unitNames;
    after = unitNames;
    before = unitNames;
    conflicts = unitNames;
    unitConfig = mkOption {
      type = types.attrsOf unitOption;
      default = { };
    };
  };
  unitsOf =
    options:
    mkOption {
      type = types.attrsOf (types.submodule { options = unitOptions // options; });
      default = { };
    };
  loaderSettings = types.attrsOf (
    types.nullOr (
      types.oneOf [
        types.bool
        types.int
        types.str
      ]
    )
  );
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };

    boot.initrd.systemd.enable = mkOption {
      type = types.bool;
      default = false;
    };
    boot.bootspec.extensions = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
    boot.loader.efi.efiSysMountPoint = mkOption {
      type = types.str;
      default = "/boot";
    };
    boot.loader.systemd-boot.enable = mkOption {
      type = types.bool;
      default = false;
    };
    boot.loader.systemd-boot.extraInstallCommands = mkOption {
      type = types.lines;
      default = "";
    };
    boot.loader.systemd-boot.xbootldrMountPoint = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    boot.loader.limine.enable = mkOption {
      type = types.bool;
      default = false;
    };

    # Lanzaboote's (nix-community/lanzaboote, nix/modules/lanzaboote.nix).
    boot.lanzaboote = {
      enable = lib.mkEnableOption "Lanzaboote";
      pkiBundle = mkOption { type = types.nullOr types.externalPath; };
      publicKeyFile = mkOption {
        type = types.path;
        default = "${config.boot.lanzaboote.pkiBundle}/keys/db/db.pem";
      };
      privateKeyFile = mkOption {
        type = types.path;
        default = "${config.boot.lanzaboote.pkiBundle}/keys/db/db.key";
      };
      extraEfiSysMountPoints = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      settings = mkOption {
        type = types.submodule { freeformType = loaderSettings; };
        default = {
          timeout = 5;
          default = "nixos-*";
        };
        # As Lanzaboote's: what is set goes over the default.
        apply = lib.recursiveUpdate {
          timeout = 5;
          default = "nixos-*";
        };
      };
    };

    systemd.packages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    systemd.services = unitsOf {
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };
    systemd.paths = unitsOf {
      pathConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    };

    virtualisation.xen.enable = lib.mkEnableOption "Xen";
    virtualisation.xen.package = mkOption { type = types.package; };
  };

  config = {
    _module.args = {
      pkgs = {
        # This repository's package, as nix/module.nix builds it.
        callPackage = _: _: package "xen-boot-builder";
        coreutils = package "coreutils";
        xen-boot-builder = package "xen-boot-builder";
        # nixpkgs' own boot.nix wraps its script with this.
        writeShellApplication = args: package args.name;
      };
      # As NixOS's utils.escapeSystemdExecArgs: each argument a JSON string,
      # with systemd's specifiers (%) and variables ($) doubled.
      utils.escapeSystemdExecArgs = lib.concatMapStringsSep " " (
        arg: lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON (toString arg))
      );
    };
    virtualisation.xen.package = package "xen" // {
      boot = "/nix/store/00000000000000000000000000000000-xen-4.22.0-boot";
      efi = "boot/xen.efi";
      multiboot = "boot/xen.gz";
      version = "4.22.0";
    };
  };
}
