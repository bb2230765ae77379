# xen-boot-builder as a Nix package: `pkgs.callPackage ./nix/package.nix { }`.
{
  lib,
  stdenv,
  cmake,
  ninja,
  pkg-config,
  boost,
  nlohmann_json,
  elfutils,
  openssl,
  gtest,
  systemdLibs,
}:

stdenv.mkDerivation {
  pname = "xen-boot-builder";
  version = "0.1.0";
  src = lib.cleanSource ./..;

  nativeBuildInputs = [
    cmake
    ninja
    pkg-config
  ];
  buildInputs = [
    boost
    nlohmann_json
    elfutils
    openssl
    gtest
    systemdLibs
  ];

  installPhase = ''
    runHook preInstall
    install -Dm755 xen-boot-builder $out/bin/xen-boot-builder
    install -Dm644 ../man/xen-boot-builder.1 $out/share/man/man1/xen-boot-builder.1
    runHook postInstall
  '';

  meta = {
    description = "Installs Xen hypervisor boot entries on the EFI System Partition of NixOS machines";
    mainProgram = "xen-boot-builder";
    license = lib.licenses.mit;
    platforms = [ "x86_64-linux" ];
  };
}
