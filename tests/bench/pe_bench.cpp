// Benchmarks of the hot paths: reading xen.efi, adding the .config section,
// dropping debug sections, the PE checksum and the SHA-256 a cold run computes
// of every image it writes, planning a 20-generation ESP, reading a record
// of 25,000 and 100,000 images, and the check a run with nothing to change
// makes of each image the record vouches for (time and bytes read per
// image). Prints figures; asserts nothing.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "xbb/digest.hpp"
#include "xbb/esp.hpp"
#include "xbb/layout.hpp"
#include "xbb/pe.hpp"
#include "xbb/planner.hpp"
#include "xbb/record.hpp"

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

// The record's hash of an image (XXH3-128 with the CheckSum field taken
// apart), which every written image goes through.
void RecordHashOfImage(benchmark::State& state) {
  auto image = real_image();
  const std::string_view bytes(reinterpret_cast<const char*>(image.data()), image.size());
  for (auto _ : state) benchmark::DoNotOptimize(xbb::record_hash(bytes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image.size()));
}
BENCHMARK(RecordHashOfImage);

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

// A record of state.range(0) images (short digests and no .config, so that
// 100,000 fit the 16 MiB a record may have).
void ReadRecord(benchmark::State& state) {
  xbb::Record record;
  for (std::int64_t n = 0; n < state.range(0); ++n) {
    record.images["EFI/xen/xen-generation-" + std::to_string(n) + ".efi"] = {
        {2867200, 1764650000123456789 + n}, "d", "r", "", ""};
  }
  const std::string text = xbb::render_record(record);
  for (auto _ : state) {
    auto read = xbb::parse_record(text);
    if (!read || read->images.size() != record.images.size()) state.SkipWithError("not read");
    benchmark::DoNotOptimize(read);
  }
  state.counters["record_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(ReadRecord)->Arg(25000)->Arg(100000)->Unit(benchmark::kMillisecond);

// The bytes this process has read (rchar of /proc/self/io).
double bytes_read_so_far() {
  std::ifstream io("/proc/self/io");
  for (std::string key, value; io >> key >> value;) {
    if (key == "rchar:") return std::stod(value);
  }
  return 0;
}

// read_esp_state on an ESP of state.range(0) unified images (hard links to
// one Xen 4.17 image with a .config), all vouched for by the record: per
// image, one open, a read of the headers and one of the .config.
void CheckRecordedImages(benchmark::State& state) {
  namespace fs = std::filesystem;
  const fs::path esp_root =
      fs::temp_directory_path() / ("xbb-bench-esp-" + std::to_string(::getpid()));
  fs::create_directories(esp_root / "EFI/xen");
  const std::string config = std::string(xbb::layout::kMarker) +
                             "\n[global]\ndefault=nixos\n\n[nixos]\noptions=dom0_mem=1G\n"
                             "kernel=k.efi init=/nix/store/a-nixos-system/init\nramdisk=i.efi\n";
  const auto made =
      xbb::pe::add_sections(real_image(), {{".config", {config.begin(), config.end()}}}, {true});
  const fs::path original = esp_root / "EFI/xen/original.efi";
  std::ofstream(original, std::ios::binary)
      .write(reinterpret_cast<const char*>(made.file.data()),
             static_cast<std::streamsize>(made.file.size()));
  xbb::Esp esp(esp_root);
  const xbb::FileStamp stamp = esp.stat("EFI/xen/original.efi").stamp;
  xbb::Record record;
  for (std::int64_t n = 0; n < state.range(0); ++n) {
    const std::string path = "EFI/xen/xen-generation-" + std::to_string(n) + ".efi";
    fs::create_hard_link(original, esp_root / path);
    record.images[path] = {stamp, "d", "r", config, ""};
  }
  fs::remove(original);
  const double before = bytes_read_so_far();
  for (auto _ : state) {
    const auto read = xbb::read_esp_state(esp, {}, nullptr, record);
    for (const auto& [path, file] : read.xen_images)
      if (!file.recipe) state.SkipWithError(("not vouched for: " + path).c_str());
  }
  const double images = static_cast<double>(state.iterations() * state.range(0));
  state.counters["bytes_read_per_image"] = (bytes_read_so_far() - before) / images;
  state.counters["images"] = static_cast<double>(state.range(0));
  fs::remove_all(esp_root);
}
BENCHMARK(CheckRecordedImages)->Arg(100)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
