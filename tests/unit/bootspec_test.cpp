#include "xbb/bootspec.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bootspec_document.hpp"
#include "xbb/error.hpp"

namespace {

using Json = nlohmann::ordered_json;

const std::string kOrigin = "/nix/store/aaaa-nixos-system-hv/boot.json";

// The example boot.json of background.md section 1, as NixOS writes it.
const char* const kExample = R"json({
  "org.nixos.bootspec.v1": {
    "init": "/nix/store/aaaa-nixos-system-hv-25.11.20251101.abc1234/init",
    "initrd": "/nix/store/bbbb-initrd-linux-6.12.7/initrd",
    "initrdSecrets": "/nix/store/cccc-append-initrd-secrets/bin/append-initrd-secrets",
    "kernel": "/nix/store/dddd-linux-6.12.7/bzImage",
    "kernelParams": ["loglevel=4", "console=hvc0"],
    "label": "NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7)",
    "system": "x86_64-linux",
    "toplevel": "/nix/store/aaaa-nixos-system-hv-25.11.20251101.abc1234"
  },
  "org.nixos.specialisation.v1": {
    "debug": {
      "org.nixos.bootspec.v1": { "init": "/nix/store/eeee-nixos-system-hv-debug/init",
        "initrd": "/nix/store/bbbb-initrd-linux-6.12.7/initrd",
        "kernel": "/nix/store/dddd-linux-6.12.7/bzImage",
        "kernelParams": ["loglevel=7"], "label": "NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7)",
        "system": "x86_64-linux", "toplevel": "/nix/store/eeee-nixos-system-hv-debug" },
      "org.nixos.specialisation.v1": {},
      "org.nixos.systemd-boot": { "sortKey": "nixos-debug" },
      "org.xenproject.bootspec.v1": { "xen": "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0.efi", "xenParams": ["loglvl=all", "guest_loglvl=all"] },
      "org.xenproject.bootspec.v2": { "efiPath": "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0.efi",
        "multibootPath": "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0", "params": ["loglvl=all", "guest_loglvl=all"], "version": "4.22.0" }
    }
  },
  "org.nixos.systemd-boot": { "sortKey": "nixos", "devicetree": "/nix/store/gggg-device-tree-overlays/board.dtb" },
  "org.xenproject.bootspec.v1": { "xen": "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0.efi", "xenParams": ["dom0_mem=4096M,max:4096M", "dom0_max_vcpus=4"] },
  "org.xenproject.bootspec.v2": { "efiPath": "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0.efi",
    "multibootPath": "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0", "params": ["dom0_mem=4096M,max:4096M", "dom0_max_vcpus=4"], "version": "4.22.0" }
})json";

// A minimal valid document: the required core keys only.
Json minimal_document(const std::string& name = "hv") {
  return Json{{"org.nixos.bootspec.v1",
               {{"system", "x86_64-linux"},
                {"init", "/nix/store/1111-nixos-system-" + name + "/init"},
                {"kernel", "/nix/store/2222-linux/bzImage"},
                {"kernelParams", {"loglevel=4"}},
                {"label", "NixOS " + name},
                {"toplevel", "/nix/store/1111-nixos-system-" + name}}}};
}

xbb::Bootspec parse(const Json& document) { return xbb::parse_bootspec(document.dump(), kOrigin); }

// The message of the Error that parsing `document` throws ("" if none).
std::string parse_error(const std::string& text) {
  try {
    xbb::parse_bootspec(text, kOrigin);
  } catch (const xbb::Error& error) {
    return error.what();
  }
  return "";
}

std::string parse_error(const Json& document) { return parse_error(document.dump()); }

TEST(Bootspec, ReadsTheExampleDocument) {
  xbb::Bootspec spec = xbb::parse_bootspec(kExample, kOrigin);
  EXPECT_EQ(spec.system, "x86_64-linux");
  EXPECT_EQ(spec.init, "/nix/store/aaaa-nixos-system-hv-25.11.20251101.abc1234/init");
  EXPECT_EQ(spec.kernel, "/nix/store/dddd-linux-6.12.7/bzImage");
  EXPECT_EQ(spec.kernel_params, (std::vector<std::string>{"loglevel=4", "console=hvc0"}));
  EXPECT_EQ(spec.label, "NixOS Xantusia 25.11.20251101.abc1234 (Linux 6.12.7)");
  EXPECT_EQ(spec.toplevel, "/nix/store/aaaa-nixos-system-hv-25.11.20251101.abc1234");
  EXPECT_EQ(spec.initrd, "/nix/store/bbbb-initrd-linux-6.12.7/initrd");
  EXPECT_EQ(spec.initrd_secrets, "/nix/store/cccc-append-initrd-secrets/bin/append-initrd-secrets");
  EXPECT_EQ(spec.sort_key, "nixos");
  EXPECT_EQ(spec.devicetree, "/nix/store/gggg-device-tree-overlays/board.dtb");
  ASSERT_TRUE(spec.xen.has_value());
  EXPECT_EQ(spec.xen->schema, 2);
  EXPECT_EQ(spec.xen->efi_path, "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0.efi");
  EXPECT_EQ(spec.xen->params,
            (std::vector<std::string>{"dom0_mem=4096M,max:4096M", "dom0_max_vcpus=4"}));
  EXPECT_EQ(spec.xen->multiboot_path, "/nix/store/ffff-xen-4.22.0-boot/boot/xen-4.22.0");
  EXPECT_EQ(spec.xen->version, "4.22.0");

  ASSERT_EQ(spec.specialisations.size(), 1u);
  EXPECT_TRUE(spec.broken_specialisations.empty());
  const auto& [name, debug] = spec.specialisations[0];
  EXPECT_EQ(name, "debug");
  EXPECT_EQ(debug.init, "/nix/store/eeee-nixos-system-hv-debug/init");
  EXPECT_EQ(debug.kernel_params, std::vector<std::string>{"loglevel=7"});
  EXPECT_EQ(debug.toplevel, "/nix/store/eeee-nixos-system-hv-debug");
  EXPECT_EQ(debug.initrd, "/nix/store/bbbb-initrd-linux-6.12.7/initrd");
  EXPECT_FALSE(debug.initrd_secrets.has_value());
  EXPECT_EQ(debug.sort_key, "nixos-debug");
  EXPECT_FALSE(debug.devicetree.has_value());
  ASSERT_TRUE(debug.xen.has_value());
  EXPECT_EQ(debug.xen->schema, 2);
  EXPECT_EQ(debug.xen->params, (std::vector<std::string>{"loglvl=all", "guest_loglvl=all"}));
}

TEST(Bootspec, MinimalDocumentHasNoOptionalParts) {
  xbb::Bootspec spec = parse(minimal_document());
  EXPECT_EQ(spec.kernel, "/nix/store/2222-linux/bzImage");
  EXPECT_FALSE(spec.initrd.has_value());
  EXPECT_FALSE(spec.initrd_secrets.has_value());
  EXPECT_FALSE(spec.sort_key.has_value());
  EXPECT_FALSE(spec.devicetree.has_value());
  EXPECT_FALSE(spec.xen.has_value());
  EXPECT_TRUE(spec.specialisations.empty());
  EXPECT_TRUE(spec.broken_specialisations.empty());
}

TEST(Bootspec, EmptyKernelParamsAreAllowed) {
  Json document = minimal_document();
  document["org.nixos.bootspec.v1"]["kernelParams"] = Json::array();
  EXPECT_TRUE(parse(document).kernel_params.empty());
}

TEST(Bootspec, IgnoresUnknownExtensionsAndKeys) {
  Json document = minimal_document();
  document["org.nix-community.lanzaboote.sort_key"] = "lanza";
  document["org.nixos.extra-initrd.v1"] = {{"paths", {"/nix/store/x"}}};
  document["org.nixos.bootspec.v1"]["someFutureKey"] = 42;
  EXPECT_EQ(parse(document).label, "NixOS hv");
}

TEST(Bootspec, ReadsLanzabootesSortKeyOrSaysWhyNot) {
  Json document = minimal_document();
  EXPECT_FALSE(parse(document).lanzaboote_sort_key_problem);
  document["org.nix-community.lanzaboote"] = Json::object();
  EXPECT_FALSE(parse(document).lanzaboote_sort_key);
  EXPECT_FALSE(parse(document).lanzaboote_sort_key_problem);
  document["org.nix-community.lanzaboote"]["sort_key"] = "zz-lanza";
  EXPECT_EQ(parse(document).lanzaboote_sort_key, "zz-lanza");
  EXPECT_FALSE(parse(document).lanzaboote_sort_key_problem);
  const std::string field = kOrigin + ": org.nix-community.lanzaboote";
  for (const auto& [value, why] : std::vector<std::pair<Json, std::string>>{
           {7, ".sort_key: must be a string"},
           {nullptr, ".sort_key: must be a string"},
           {Json::array({"lanza"}), ".sort_key: must be a string"},
           {"a\tb", ".sort_key: holds a control character (a\\x09b)"},
           {"a\nb", ".sort_key: holds a control character (a\\x0ab)"},
           {"a\x7f", ".sort_key: holds a control character (a\\x7f)"}}) {
    document["org.nix-community.lanzaboote"]["sort_key"] = value;
    const xbb::Bootspec spec = parse(document);
    EXPECT_FALSE(spec.lanzaboote_sort_key) << value.dump();
    EXPECT_EQ(spec.lanzaboote_sort_key_problem, field + why) << value.dump();
  }
  document["org.nix-community.lanzaboote"] = "lanza";
  EXPECT_EQ(parse(document).lanzaboote_sort_key_problem, field + ": must be an object");
}

TEST(Bootspec, XenV2IsPreferredOverV1) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v1"] = {{"xen", "/nix/store/old-xen/boot/xen.efi"},
                                            {"xenParams", {"v1-param"}}};
  document["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/new-xen/boot/xen.efi"},
                                            {"params", {"v2-param"}}};
  xbb::Bootspec spec = parse(document);
  ASSERT_TRUE(spec.xen.has_value());
  EXPECT_EQ(spec.xen->schema, 2);
  EXPECT_EQ(spec.xen->efi_path, "/nix/store/new-xen/boot/xen.efi");
  EXPECT_EQ(spec.xen->params, std::vector<std::string>{"v2-param"});
  EXPECT_FALSE(spec.xen->multiboot_path.has_value());
  EXPECT_FALSE(spec.xen->version.has_value());
}

TEST(Bootspec, V1IsNotReadWhenV2IsPresent) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v1"] = "not even an object";
  document["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/xen/boot/xen.efi"},
                                            {"params", Json::array()}};
  EXPECT_EQ(parse(document).xen->schema, 2);
}

TEST(Bootspec, XenV1ReadsXenAndXenParams) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v1"] = {{"xen", "/nix/store/xen/boot/xen.efi"},
                                            {"xenParams", {"dom0_mem=1G", "loglvl=all"}}};
  xbb::Bootspec spec = parse(document);
  ASSERT_TRUE(spec.xen.has_value());
  EXPECT_EQ(spec.xen->schema, 1);
  EXPECT_EQ(spec.xen->efi_path, "/nix/store/xen/boot/xen.efi");
  EXPECT_EQ(spec.xen->params, (std::vector<std::string>{"dom0_mem=1G", "loglvl=all"}));
  EXPECT_FALSE(spec.xen->multiboot_path.has_value());
  EXPECT_FALSE(spec.xen->version.has_value());
}

TEST(Bootspec, XenV1FallsBackToLegacyEfiPath) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v1"] = {{"efiPath", "/nix/store/legacy-xen/boot/xen.efi"},
                                            {"xenParams", Json::array()}};
  xbb::Bootspec spec = parse(document);
  ASSERT_TRUE(spec.xen.has_value());
  EXPECT_EQ(spec.xen->schema, 1);
  EXPECT_EQ(spec.xen->efi_path, "/nix/store/legacy-xen/boot/xen.efi");
}

TEST(Bootspec, XenV1PrefersXenOverLegacyEfiPath) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v1"] = {{"efiPath", "/nix/store/legacy-xen/boot/xen.efi"},
                                            {"xen", "/nix/store/xen/boot/xen.efi"},
                                            {"xenParams", Json::array()}};
  EXPECT_EQ(parse(document).xen->efi_path, "/nix/store/xen/boot/xen.efi");
}

TEST(Bootspec, XenV1WithNeitherPathNamesEfiPath) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v1"] = {{"xenParams", Json::array()}};
  EXPECT_EQ(parse_error(document), kOrigin + ": org.xenproject.bootspec.v1.efiPath: missing");
}

TEST(Bootspec, XenRequiredKeys) {
  Json v2 = minimal_document();
  v2["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/xen/boot/xen.efi"}};
  EXPECT_EQ(parse_error(v2), kOrigin + ": org.xenproject.bootspec.v2.params: missing");
  v2["org.xenproject.bootspec.v2"] = {{"params", Json::array()}};
  EXPECT_EQ(parse_error(v2), kOrigin + ": org.xenproject.bootspec.v2.efiPath: missing");
  Json v1 = minimal_document();
  v1["org.xenproject.bootspec.v1"] = {{"xen", "/nix/store/xen/boot/xen.efi"}};
  EXPECT_EQ(parse_error(v1), kOrigin + ": org.xenproject.bootspec.v1.xenParams: missing");
}

TEST(Bootspec, MissingSpecialisationKeyMeansNone) {
  Json document = minimal_document();
  ASSERT_FALSE(document.contains("org.nixos.specialisation.v1"));
  xbb::Bootspec spec = parse(document);
  EXPECT_TRUE(spec.specialisations.empty());
  EXPECT_TRUE(spec.broken_specialisations.empty());
}

TEST(Bootspec, SpecialisationsKeepDocumentOrder) {
  Json document = minimal_document();
  document["org.nixos.specialisation.v1"] = {{"zeta", minimal_document("zeta")},
                                             {"alpha", minimal_document("alpha")}};
  xbb::Bootspec spec = parse(document);
  ASSERT_EQ(spec.specialisations.size(), 2u);
  EXPECT_EQ(spec.specialisations[0].first, "zeta");
  EXPECT_EQ(spec.specialisations[0].second.label, "NixOS zeta");
  EXPECT_EQ(spec.specialisations[1].first, "alpha");
  EXPECT_EQ(spec.specialisations[1].second.label, "NixOS alpha");
}

TEST(Bootspec, SpecialisationHasItsOwnExtensions) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/xen/boot/xen.efi"},
                                            {"params", {"top"}}};
  Json child = minimal_document("plain");
  child["org.nixos.systemd-boot"] = {{"sortKey", "child"}};
  document["org.nixos.specialisation.v1"] = {{"plain", child}};
  xbb::Bootspec spec = parse(document);
  ASSERT_EQ(spec.specialisations.size(), 1u);
  const xbb::Bootspec& plain = spec.specialisations[0].second;
  EXPECT_FALSE(plain.xen.has_value());  // the parent's Xen extension is not inherited
  EXPECT_EQ(plain.sort_key, "child");
  EXPECT_FALSE(spec.sort_key.has_value());
}

TEST(Bootspec, BrokenSpecialisationDoesNotFailItsParent) {
  Json document = minimal_document();
  Json broken = minimal_document("debug");
  broken["org.nixos.bootspec.v1"].erase("kernel");
  document["org.nixos.specialisation.v1"] = {{"debug", broken}, {"good", minimal_document("good")}};
  xbb::Bootspec spec = parse(document);
  EXPECT_EQ(spec.label, "NixOS hv");
  ASSERT_EQ(spec.specialisations.size(), 1u);
  EXPECT_EQ(spec.specialisations[0].first, "good");
  ASSERT_EQ(spec.broken_specialisations.size(), 1u);
  EXPECT_EQ(spec.broken_specialisations[0].first, "debug");
  EXPECT_EQ(spec.broken_specialisations[0].second,
            kOrigin + ": org.nixos.specialisation.v1.debug.org.nixos.bootspec.v1.kernel: missing");
}

TEST(Bootspec, SpecialisationThatIsNotAnObjectIsBroken) {
  Json document = minimal_document();
  document["org.nixos.specialisation.v1"] = {{"odd", 7}};
  xbb::Bootspec spec = parse(document);
  ASSERT_EQ(spec.broken_specialisations.size(), 1u);
  EXPECT_EQ(spec.broken_specialisations[0].second,
            kOrigin + ": org.nixos.specialisation.v1.odd: must be an object");
}

TEST(Bootspec, SpecialisationNameWithNewlineIsBrokenAndPrintable) {
  Json document = minimal_document();
  document["org.nixos.specialisation.v1"] = {{"a\nb", minimal_document()}};
  xbb::Bootspec spec = parse(document);
  EXPECT_TRUE(spec.specialisations.empty());
  ASSERT_EQ(spec.broken_specialisations.size(), 1u);
  EXPECT_EQ(spec.broken_specialisations[0].first, "\"a\\nb\"");
  EXPECT_EQ(spec.broken_specialisations[0].second,
            kOrigin + ": org.nixos.specialisation.v1.\"a\\nb\": name contains a newline");
}

TEST(Bootspec, NestedSpecialisationsAreIgnored) {
  Json child = minimal_document("child");
  child["org.nixos.specialisation.v1"] = {{"grandchild", "not a document at all"}};
  Json document = minimal_document();
  document["org.nixos.specialisation.v1"] = {{"child", child}};
  xbb::Bootspec spec = parse(document);
  ASSERT_EQ(spec.specialisations.size(), 1u);
  EXPECT_TRUE(spec.broken_specialisations.empty());
  EXPECT_TRUE(spec.specialisations[0].second.specialisations.empty());
  EXPECT_TRUE(spec.specialisations[0].second.broken_specialisations.empty());
}

TEST(Bootspec, SpecialisationsThatIsNotAnObjectFailsTheDocument) {
  Json document = minimal_document();
  document["org.nixos.specialisation.v1"] = Json::array();
  EXPECT_EQ(parse_error(document), kOrigin + ": org.nixos.specialisation.v1: must be an object");
}

TEST(Bootspec, RejectsInvalidJson) {
  std::string message = parse_error(std::string("{\"org.nixos.bootspec.v1\": "));
  EXPECT_EQ(message.rfind(kOrigin + ": invalid JSON: ", 0), 0u) << message;
  message = parse_error(std::string(""));
  EXPECT_EQ(message.rfind(kOrigin + ": invalid JSON: ", 0), 0u) << message;
}

// A number too large for a double (found by bootspec_fuzz: nlohmann_json
// reports it as out_of_range) is read as null: where we read a string it is
// still refused, anywhere else it does not matter.
TEST(Bootspec, ReadsNumbersTooLargeForADoubleAsNull) {
  EXPECT_EQ(parse_error(std::string("1E400")), kOrigin + ": must be a JSON object");
  EXPECT_EQ(parse_error(std::string("{\"org.nixos.bootspec.v1\": {\"system\": -1e999}}")),
            kOrigin + ": org.nixos.bootspec.v1.system: must be a string");
  Json document = minimal_document();
  std::string text = document.dump();
  text.insert(text.size() - 1, ",\"com.example\":{\"n\":1e400,\"m\":[-2E+999, 1e-400, 12]}");
  xbb::Bootspec spec = xbb::parse_bootspec(text, kOrigin);
  EXPECT_EQ(spec.label, "NixOS hv");
}

TEST(Bootspec, LeavesNumbersInsideStringsAlone) {
  Json document = minimal_document();
  document["org.nixos.bootspec.v1"]["kernelParams"] = {"mem=1e400", "x=[[[{{"};
  EXPECT_EQ(parse(document).kernel_params, (std::vector<std::string>{"mem=1e400", "x=[[[{{"}));
}

// A document nested deeper than the tree can be copied and destroyed safely
// (a 101 KB boot.json nested 50,000 arrays deep crashed the run) is refused
// before the tree is built, wherever the nesting is.
TEST(Bootspec, RefusesDeepNestingBeforeBuildingTheTree) {
  Json document = minimal_document();
  std::string text = document.dump();
  const std::string deep = std::string(50000, '[') + std::string(50000, ']');
  std::string hostile = text;
  hostile.insert(hostile.size() - 1, ",\"com.example\":" + deep + ",\"after\":1");
  EXPECT_EQ(parse_error(hostile), kOrigin + ": JSON nested more than 128 levels deep (at byte " +
                                      std::to_string(text.size() - 1 + 15 + 127) + ")");

  // 128 levels: the document's object and 127 arrays in it.
  std::string fits = text;
  fits.insert(fits.size() - 1, ",\"com.example\":" + std::string(127, '[') + std::string(127, ']'));
  EXPECT_EQ(xbb::parse_bootspec(fits, kOrigin).label, "NixOS hv");
}

TEST(Bootspec, RefusesADocumentLargerThanAMebibyte) {
  Json document = minimal_document();
  document["com.example"] = std::string(1 << 20, 'x');
  EXPECT_EQ(parse_error(document.dump()),
            kOrigin + ": " + std::to_string(document.dump().size()) +
                " bytes, more than the 1048576 this document may have");
}

TEST(Bootspec, RejectsDocumentThatIsNotAnObject) {
  EXPECT_EQ(parse_error(std::string("[1, 2]")), kOrigin + ": must be a JSON object");
  EXPECT_EQ(parse_error(std::string("\"text\"")), kOrigin + ": must be a JSON object");
}

TEST(Bootspec, RejectsMissingCore) {
  EXPECT_EQ(parse_error(Json::object()), kOrigin + ": org.nixos.bootspec.v1: missing");
  EXPECT_EQ(parse_error(Json{{"org.nixos.bootspec.v1", "x"}}),
            kOrigin + ": org.nixos.bootspec.v1: must be an object");
}

TEST(Bootspec, EveryRequiredCoreKeyIsRequired) {
  for (const char* key : {"system", "init", "kernel", "kernelParams", "label", "toplevel"}) {
    Json document = minimal_document();
    document["org.nixos.bootspec.v1"].erase(key);
    EXPECT_EQ(parse_error(document), kOrigin + ": org.nixos.bootspec.v1." + key + ": missing")
        << key;
  }
}

TEST(Bootspec, RejectsMistypedFields) {
  struct Case {
    const char* pointer;
    Json value;
    const char* message;
  };
  const Case cases[] = {
      {"/org.nixos.bootspec.v1/system", 1, "org.nixos.bootspec.v1.system: must be a string"},
      {"/org.nixos.bootspec.v1/kernel", Json::array(),
       "org.nixos.bootspec.v1.kernel: must be a string"},
      {"/org.nixos.bootspec.v1/kernelParams", "loglevel=4",
       "org.nixos.bootspec.v1.kernelParams: must be an array of strings"},
      {"/org.nixos.bootspec.v1/kernelParams/1", 5,
       "org.nixos.bootspec.v1.kernelParams[1]: must be a string"},
      {"/org.nixos.bootspec.v1/kernelParams/1", nullptr,
       "org.nixos.bootspec.v1.kernelParams[1]: must be a string"},
      {"/org.nixos.bootspec.v1/initrd", nullptr, "org.nixos.bootspec.v1.initrd: must be a string"},
      {"/org.nixos.bootspec.v1/initrdSecrets", nullptr,
       "org.nixos.bootspec.v1.initrdSecrets: must be a string"},
      {"/org.nixos.systemd-boot", "nixos", "org.nixos.systemd-boot: must be an object"},
      {"/org.nixos.systemd-boot/sortKey", false,
       "org.nixos.systemd-boot.sortKey: must be a string"},
      {"/org.xenproject.bootspec.v2", Json::array(),
       "org.xenproject.bootspec.v2: must be an object"},
      {"/org.xenproject.bootspec.v2/params/0", Json::object(),
       "org.xenproject.bootspec.v2.params[0]: must be a string"},
      {"/org.xenproject.bootspec.v2/version", 4.17,
       "org.xenproject.bootspec.v2.version: must be a string"},
  };
  for (const Case& c : cases) {
    Json document = minimal_document();
    document["org.nixos.bootspec.v1"]["kernelParams"] = {"loglevel=4", "quiet"};
    document["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/xen/boot/xen.efi"},
                                              {"params", {"a"}}};
    document[Json::json_pointer(c.pointer)] = c.value;
    EXPECT_EQ(parse_error(document), kOrigin + ": " + c.message) << c.pointer;
  }
}

TEST(Bootspec, StorePathsMustBeAbsoluteWithoutDotComponents) {
  const char* const pointers[] = {
      "/org.nixos.bootspec.v1/init",          "/org.nixos.bootspec.v1/kernel",
      "/org.nixos.bootspec.v1/toplevel",      "/org.nixos.bootspec.v1/initrd",
      "/org.nixos.bootspec.v1/initrdSecrets", "/org.nixos.systemd-boot/devicetree",
      "/org.xenproject.bootspec.v2/efiPath",  "/org.xenproject.bootspec.v2/multibootPath",
  };
  struct Bad {
    const char* path;
    const char* problem;
  };
  const Bad bad_paths[] = {
      {"nix/store/x/bzImage", "must be an absolute path"},
      {"", "must be an absolute path"},
      {"/nix/store/x/../../etc/shadow", "must not have a '.' or '..' component"},
      {"/nix/store/x/..", "must not have a '.' or '..' component"},
      {"/nix/./store/x", "must not have a '.' or '..' component"},
  };
  for (const char* pointer : pointers) {
    for (const Bad& bad : bad_paths) {
      Json document = minimal_document();
      document["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/xen/boot/xen.efi"},
                                                {"params", {"a"}}};
      document[Json::json_pointer(pointer)] = bad.path;
      std::string field = std::string(pointer + 1);
      std::replace(field.begin(), field.end(), '/', '.');
      EXPECT_EQ(parse_error(document), kOrigin + ": " + field + ": " + bad.problem)
          << pointer << " " << bad.path;
    }
  }
}

TEST(Bootspec, PathsWithDotsInsideNamesAreFine) {
  Json document = minimal_document();
  document["org.nixos.bootspec.v1"]["kernel"] = "/nix/store/2222-linux-6.12.7/..bzImage.";
  EXPECT_EQ(parse(document).kernel, "/nix/store/2222-linux-6.12.7/..bzImage.");
}

TEST(Bootspec, HeaderExampleMessage) {
  Json document = minimal_document();
  document["org.xenproject.bootspec.v2"] = {
      {"efiPath", "/nix/store/xen/boot/xen.efi"},
      {"params", {"dom0_mem=1G", "loglvl=all\nkernel=/evil"}}};
  EXPECT_EQ(parse_error(document),
            kOrigin + ": org.xenproject.bootspec.v2.params[1]: contains a newline");
}

// Every string field the program reads, as a JSON pointer into a document
// that carries the extension it belongs to.
struct Field {
  const char* pointer;
  const char* path;  // as named in the error message
  Json document;
};

std::vector<Field> every_string_field() {
  Json v2 = minimal_document();
  v2["org.nixos.bootspec.v1"]["initrd"] = "/nix/store/3333-initrd/initrd";
  v2["org.nixos.bootspec.v1"]["initrdSecrets"] =
      "/nix/store/4444-secrets/bin/append-initrd-secrets";
  v2["org.nixos.systemd-boot"] = {{"sortKey", "nixos"},
                                  {"devicetree", "/nix/store/5555-dtb/board.dtb"}};
  v2["org.xenproject.bootspec.v2"] = {{"efiPath", "/nix/store/6666-xen/boot/xen.efi"},
                                      {"multibootPath", "/nix/store/6666-xen/boot/xen"},
                                      {"params", {"dom0_mem=1G"}},
                                      {"version", "4.22.0"}};
  Json v1 = minimal_document();
  v1["org.xenproject.bootspec.v1"] = {{"xen", "/nix/store/6666-xen/boot/xen.efi"},
                                      {"xenParams", {"dom0_mem=1G"}}};
  Json legacy = minimal_document();
  legacy["org.xenproject.bootspec.v1"] = {{"efiPath", "/nix/store/6666-xen/boot/xen.efi"},
                                          {"xenParams", {"dom0_mem=1G"}}};
  return {
      {"/org.nixos.bootspec.v1/system", "org.nixos.bootspec.v1.system", v2},
      {"/org.nixos.bootspec.v1/init", "org.nixos.bootspec.v1.init", v2},
      {"/org.nixos.bootspec.v1/kernel", "org.nixos.bootspec.v1.kernel", v2},
      {"/org.nixos.bootspec.v1/kernelParams/0", "org.nixos.bootspec.v1.kernelParams[0]", v2},
      {"/org.nixos.bootspec.v1/label", "org.nixos.bootspec.v1.label", v2},
      {"/org.nixos.bootspec.v1/toplevel", "org.nixos.bootspec.v1.toplevel", v2},
      {"/org.nixos.bootspec.v1/initrd", "org.nixos.bootspec.v1.initrd", v2},
      {"/org.nixos.bootspec.v1/initrdSecrets", "org.nixos.bootspec.v1.initrdSecrets", v2},
      {"/org.nixos.systemd-boot/sortKey", "org.nixos.systemd-boot.sortKey", v2},
      {"/org.nixos.systemd-boot/devicetree", "org.nixos.systemd-boot.devicetree", v2},
      {"/org.xenproject.bootspec.v2/efiPath", "org.xenproject.bootspec.v2.efiPath", v2},
      {"/org.xenproject.bootspec.v2/multibootPath", "org.xenproject.bootspec.v2.multibootPath", v2},
      {"/org.xenproject.bootspec.v2/params/0", "org.xenproject.bootspec.v2.params[0]", v2},
      {"/org.xenproject.bootspec.v2/version", "org.xenproject.bootspec.v2.version", v2},
      {"/org.xenproject.bootspec.v1/xen", "org.xenproject.bootspec.v1.xen", v1},
      {"/org.xenproject.bootspec.v1/xenParams/0", "org.xenproject.bootspec.v1.xenParams[0]", v1},
      {"/org.xenproject.bootspec.v1/efiPath", "org.xenproject.bootspec.v1.efiPath", legacy},
  };
}

struct Injection {
  std::string text;
  const char* problem;
};

const Injection kInjections[] = {
    {"/nix/store/x\nkernel=/evil", "contains a newline"},
    {"/nix/store/x\n[global]", "contains a newline"},
    {"/nix/store/x\r\ndefault=evil", "contains a newline"},
    {"/nix/store/x\rtitle", "contains a carriage return"},
    {std::string("/nix/store/x\0y", 14), "contains a NUL byte"},
};

TEST(Bootspec, EveryStringFieldRejectsLineBreaksAndNul) {
  for (const Field& field : every_string_field()) {
    ASSERT_EQ(parse_error(field.document), "") << field.path;
    for (const Injection& injection : kInjections) {
      Json document = field.document;
      document[Json::json_pointer(field.pointer)] = injection.text;
      EXPECT_EQ(parse_error(document), kOrigin + ": " + field.path + ": " + injection.problem)
          << field.path << " <- " << Json(injection.text).dump();
    }
  }
}

TEST(Bootspec, EveryStringFieldOfASpecialisationBreaksOnlyThatSpecialisation) {
  for (const Field& field : every_string_field()) {
    for (const Injection& injection : kInjections) {
      Json child = field.document;
      child[Json::json_pointer(field.pointer)] = injection.text;
      Json document = minimal_document();
      document["org.nixos.specialisation.v1"] = {{"hostile", child}, {"fine", field.document}};
      xbb::Bootspec spec = parse(document);
      ASSERT_EQ(spec.specialisations.size(), 1u) << field.path;
      EXPECT_EQ(spec.specialisations[0].first, "fine");
      ASSERT_EQ(spec.broken_specialisations.size(), 1u) << field.path;
      EXPECT_EQ(spec.broken_specialisations[0].first, "hostile");
      EXPECT_EQ(spec.broken_specialisations[0].second,
                kOrigin + ": org.nixos.specialisation.v1.hostile." + field.path + ": " +
                    injection.problem);
    }
  }
}

TEST(Bootspec, BracketWithoutLineBreakIsAnOrdinaryCharacter) {
  Json document = minimal_document();
  document["org.nixos.bootspec.v1"]["kernelParams"] = {"[global]", "x=[1]"};
  EXPECT_EQ(parse(document).kernel_params, (std::vector<std::string>{"[global]", "x=[1]"}));
}

TEST(Bootspec, EscapedNulInJsonIsRejected) {
  Json document = minimal_document();
  std::string text = document.dump();
  std::string needle = "\"NixOS hv\"";
  text.replace(text.find(needle), needle.size(), "\"NixOS\\u0000hv\"");
  EXPECT_EQ(parse_error(text), kOrigin + ": org.nixos.bootspec.v1.label: contains a NUL byte");
}

}  // namespace

namespace {

// Issue 18: the document the record keeps is the bootspec without its
// specialisations, as nlohmann::json (keys sorted) dumps it, written without
// building that copy: nlohmann's text is the oracle, for any JSON it reads.
TEST(Bootspec, TheKeptDocumentIsNlohmannsSortedDump) {
  const std::string core =
      R"("org.nixos.bootspec.v1": {"toplevel": "/nix/store/1111-nixos-system-hv",
      "system": "x86_64-linux", "kernelParams": ["loglevel=4", "a\"b\\c \u00e9\ud83d\ude00"],
      "other": "\u0001\u001f\t\n\r\b\f\u007f/",
      "label": "NixOS \u2603 hv", "kernel": "/nix/store/2222-linux/bzImage",
      "init": "/nix/store/1111-nixos-system-hv/init"})";
  for (
      const std::string& extra :
      {std::string(R"("org.nixos.specialisation.v1": {"b": {}, "a": {}})"),
       std::string(R"("Zed": 1, "zed": -2, "_x": [], "x_": {}, "\u00e9": null, "e": true)"),
       std::string(R"("numbers": [0, -0, 1.5, -0.0, 1e300, 1E-7, 123456789012345678901234,
                      18446744073709551615, -9223372036854775808, 3.141592653589793])"),
       std::string(R"("nested": {"z": [{"b": [[], {}], "a": false}], "a": {"y": 1, "x": 2}},
                      "dup": 1, "dup": {"second": "wins"})"),
       std::string(
           R"("org.xenproject.bootspec.v2": {"params": [], "efiPath": "/nix/store/x/xen.efi"})")}) {
    const std::string text = "{" + extra + ", " + core + "}";
    nlohmann::json oracle = nlohmann::json::parse(text);
    oracle.erase("org.nixos.specialisation.v1");
    EXPECT_EQ(xbb::parse_bootspec_document(text, kOrigin).document, oracle.dump()) << text;
  }
}

}  // namespace
