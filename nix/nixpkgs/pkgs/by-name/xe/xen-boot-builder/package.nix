# xen-boot-builder: installs Xen boot entries on the ESP of NixOS machines,
# for nixpkgs' Xen module (nixos/modules/virtualisation/xen/boot.nix).
#
# nixpkgs' CMake hooks configure a Release build with the GNUInstallDirs
# paths pointing into $out, build with Ninja and run `cmake --install`: the
# project's install rules put the program, the man page, the systemd units
# and the shell completions in place, so there is no installPhase here.
{
  lib,
  stdenv,
  fetchFromGitHub,
  cmake,
  ninja,
  pkg-config,
  boost,
  nlohmann_json,
  simdjson,
  elfutils,
  zlib,
  openssl,
  systemdLibs,
  xxHash,
  gtest,
  gbenchmark,
  libseccomp,
  python3,
  makeWrapper,
  sbsigntool,
}:

stdenv.mkDerivation (finalAttrs: {
  pname = "xen-boot-builder";
  version = "0.1.0";

  src = fetchFromGitHub {
    owner = "OWNER";
    repo = "xen-boot-builder";
    tag = "v${finalAttrs.version}";
    hash = lib.fakeHash;
  };

  nativeBuildInputs = [
    cmake
    ninja
    pkg-config
    makeWrapper
  ];
  buildInputs = [
    boost # program_options: the command line
    nlohmann_json # bootspec documents, --json output
    simdjson # the record's memo, read by every unchanged run
    elfutils # libelf: ELF (multiboot) Xen images
    zlib # gzip-compressed ELF Xen images
    openssl # libcrypto: SHA-256 of shared images' names and of recipes
    systemdLibs # libsystemd: sd_notify for the watch daemon
    xxHash # XXH3: the record's hash of the images it lists
  ];

  cmakeFlags = [
    # Units in the package, for systemd.packages (the hook's default prefix
    # is $out already; this says where they go).
    (lib.cmakeFeature "XBB_SYSTEMD_UNIT_DIR" "${placeholder "out"}/lib/systemd/system")
  ];

  # Tests need GoogleTest and Python; the benchmark target, built with them,
  # needs Google Benchmark, and the sandboxed daemon test's system call
  # filter libseccomp. None of it is needed by the program.
  doCheck = true;
  checkInputs = [
    gtest
    gbenchmark
    libseccomp
  ];
  nativeCheckInputs = [ python3 ];
  # Every test that needs no more than the build inputs and no network: the
  # tests labelled needs-deps want what the repository's .ci/setup provides
  # (Debian's Xen images, root for tmpfs mounts, QEMU, binutils), those
  # labelled lint run checkers on the repository's own files (groff,
  # systemd-analyze, nix, zsh, fish).
  checkPhase = ''
    runHook preCheck
    ctest --output-on-failure --label-exclude 'needs-deps|lint'
    runHook postCheck
  '';

  # With --sign-key the program runs sbsign and sbverify (sbsigntool, as
  # Lanzaboote's tooling does), looked up in PATH: the wrapper puts them there.
  postFixup = ''
    wrapProgram $out/bin/xen-boot-builder --prefix PATH : ${lib.makeBinPath [ sbsigntool ]}
  '';

  meta = {
    homepage = "https://github.com/OWNER/xen-boot-builder";
    description = "Installs Xen hypervisor boot entries on the EFI System Partition of NixOS machines";
    mainProgram = "xen-boot-builder";
    license = lib.licenses.mit;
    platforms = [ "x86_64-linux" ];
    maintainers = [ ];
  };
})
