// Benchmarks of the hot paths: reading xen.efi, adding the .config section,
// dropping debug sections, the PE checksum and the SHA-256 a cold run computes
// of every image it writes, and planning a 20-generation ESP. Prints figures;
// asserts nothing.
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>

#include "xbb/digest.hpp"
#include "xbb/pe.hpp"
#include "xbb/planner.hpp"

namespace {

std::vector<std::uint8_t> read_image(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::uint8_t> real_image() {
  return read_image(XBB_DEPS_DIR "/xen-hypervisor-4.17-amd64/boot/xen-4.17-amd64.efi");
}

void ParseXenEfi(benchmark::State& state) {
  auto image = real_image();
  for (auto _ : state) benchmark::DoNotOptimize(xbb::pe::parse(image));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(ParseXenEfi);

void AddConfigSection(benchmark::State& state) {
  auto image = real_image();
  std::string config = "[global]\ndefault=nixos\n\n[nixos]\noptions=console=com1\nkernel=k\n";
  std::vector<xbb::pe::NewSection> sections{{".config", {config.begin(), config.end()}}};
  for (auto _ : state) benchmark::DoNotOptimize(xbb::pe::add_sections(image, sections));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(AddConfigSection);

// Debian 13's Xen 4.20 image without its 26 MB of .debug_* sections.
void DropDebugSections(benchmark::State& state) {
  auto image = read_image(XBB_DEPS_DIR "/xen-hypervisor-4.20-amd64/boot/xen-4.20-amd64.efi");
  for (auto _ : state) {
    benchmark::DoNotOptimize(xbb::pe::add_sections(image, {}, {.drop_debug_sections = true}));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(DropDebugSections);

void ComputeChecksum(benchmark::State& state) {
  auto image = real_image();
  const auto parsed = xbb::pe::parse(image);
  for (auto _ : state) benchmark::DoNotOptimize(xbb::pe::compute_checksum(image, parsed));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(ComputeChecksum);

void Sha256OfImage(benchmark::State& state) {
  auto image = real_image();
  const std::string_view bytes(reinterpret_cast<const char*>(image.data()), image.size());
  for (auto _ : state) benchmark::DoNotOptimize(xbb::sha256_hex(bytes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(Sha256OfImage);

void PlanTwentyGenerations(benchmark::State& state) {
  std::vector<xbb::Generation> generations;
  for (unsigned n = 1; n <= 20; ++n) {
    xbb::Generation g;
    g.rest = "generation-" + std::to_string(n);
    g.source = "loader/entries/nixos-" + g.rest + ".conf";
    g.number = n;
    g.entry.title = "NixOS";
    g.entry.version = "Generation " + std::to_string(n);
    g.entry.kernel = "/EFI/nixos/k-bzImage.efi";
    g.entry.initrds = {"/EFI/nixos/i-initrd.efi"};
    xbb::Bootspec spec;
    spec.init = "/nix/store/a-nixos-system/init";
    spec.kernel_params = {"loglevel=4"};
    spec.xen = xbb::XenExtension{2, "/nix/store/x-xen/boot/xen.efi", {"dom0_mem=1G"}, {}, {}};
    g.bootspec = spec;
    generations.push_back(g);
  }
  xbb::EspState esp;
  esp.loader_conf = "timeout 5\ndefault nixos-generation-20.conf\n";
  esp.boot_files = {"EFI/nixos/k-bzImage.efi", "EFI/nixos/i-initrd.efi"};
  for (auto _ : state) {
    benchmark::DoNotOptimize(xbb::make_plan(generations, esp, xbb::PlanOptions{}));
  }
}
BENCHMARK(PlanTwentyGenerations);

}  // namespace

BENCHMARK_MAIN();
