# xen-boot-builder as a Nix package, built from this repository:
# `pkgs.callPackage ./nix/package.nix { }`. The recipe is the one proposed to
# nixpkgs (./nixpkgs/pkgs/by-name/xe/xen-boot-builder/package.nix), with this
# working tree as its source instead of a release.
{ lib, callPackage }:

(callPackage ./nixpkgs/pkgs/by-name/xe/xen-boot-builder/package.nix { }).overrideAttrs {
  src = lib.fileset.toSource {
    root = ./..;
    fileset = lib.fileset.unions [
      ../CMakeLists.txt
      ../completions
      ../fixtures
      ../include
      ../man
      ../src
      ../systemd
      ../tests
    ];
  };
}
