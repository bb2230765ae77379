# Inputs too large to keep in the repository or to fuzz from: deep nesting
# and sizes past the limits the tool reads its inputs with (1 MiB for
# boot.json, 128 levels of JSON nesting, 64 KiB for loader entries,
# loader.conf and Xen configurations). Written at configure time into
# <build>/tests/fuzz/<fuzzer>-large/; each fuzz test runs them once before
# fuzzing (xbb_large_seeds_<fuzzer> lists them).

function(xbb_fuzz_seed fuzzer name content)
  set(file ${CMAKE_CURRENT_BINARY_DIR}/${fuzzer}-large/${name})
  file(WRITE ${file} "${content}")
  set(xbb_large_seeds_${fuzzer} ${xbb_large_seeds_${fuzzer}} ${file} PARENT_SCOPE)
endfunction()

# `count` copies of `open`, then `middle`, then `count` copies of `close`.
function(xbb_nested out open middle close count)
  string(REPEAT "${open}" ${count} head)
  string(REPEAT "${close}" ${count} tail)
  set(${out} "${head}${middle}${tail}" PARENT_SCOPE)
endfunction()

# `text` followed by `filler` repeated to make exactly `size` bytes, then `end`.
function(xbb_padded out text filler end size)
  string(LENGTH "${text}${end}" used)
  math(EXPR count "${size} - ${used}")
  string(REPEAT "${filler}" ${count} padding)
  set(${out} "${text}${padding}${end}" PARENT_SCOPE)
endfunction()

# ---------------------------------------------------------------- bootspec_fuzz

# A real document's members, without the braces around them, so that keys
# can be put before or after them.
file(READ ${PROJECT_SOURCE_DIR}/fixtures/corpus/bootspec_fuzz/xen-v1.json bootspec)
string(STRIP "${bootspec}" bootspec)
string(LENGTH "${bootspec}" length)
math(EXPR length "${length} - 2")
string(SUBSTRING "${bootspec}" 1 ${length} members)

# The stack overflow of issue 8: a value nested 50,000 arrays deep followed by
# another key (about 100 KB), and the same with objects.
xbb_nested(value "[" "" "]" 50000)
xbb_fuzz_seed(bootspec_fuzz deep-arrays-then-bootspec.json "{\"x\":${value},${members}}")
xbb_nested(value "{\"x\":" "0" "}" 20000)
xbb_fuzz_seed(bootspec_fuzz deep-objects-then-bootspec.json "{\"x\":${value},${members}}")
# Deep and never closed.
string(REPEAT "[" 50000 value)
xbb_fuzz_seed(bootspec_fuzz deep-unclosed.json "${value}")
# Around the size limit: a real document padded with an unknown extension.
foreach(size 1048576 1048577)
  xbb_padded(document "{${members},\"org.example.padding\":\"" "a" "\"}" ${size})
  xbb_fuzz_seed(bootspec_fuzz size-${size}.json "${document}")
endforeach()
# Size by breadth: a thousand specialisations, each a whole document.
set(specialisations "\"s0\":{${members}}")
foreach(number RANGE 1 999)
  string(APPEND specialisations ",\"s${number}\":{${members}}")
endforeach()
xbb_fuzz_seed(bootspec_fuzz many-specialisations.json
  "{${members},\"org.nixos.specialisation.v1\":{${specialisations}}}")

# ---------------------------------------------------------------- loader_entry_fuzz
# (the first line is a file name, the rest an entry)

string(REPEAT "a" 70000 long)
xbb_fuzz_seed(loader_entry_fuzz long-options.txt
  "nixos-generation-1.conf\ntitle NixOS\nlinux /EFI/nixos/linux.efi\noptions init=/nix/store/x/init ${long}\n")
xbb_fuzz_seed(loader_entry_fuzz long-name.txt "nixos-generation-${long}.conf\ntitle NixOS\n")
string(REPEAT "options init=/nix/store/x/init\n" 2500 lines)
xbb_fuzz_seed(loader_entry_fuzz many-lines.txt "nixos-generation-1.conf\ntitle NixOS\n${lines}")

# ---------------------------------------------------------------- loader_conf_fuzz

xbb_fuzz_seed(loader_conf_fuzz long-default.conf "timeout 5\ndefault nixos-${long}.conf\n")
string(REPEAT "default nixos-generation-1.conf\n" 2500 lines)
xbb_fuzz_seed(loader_conf_fuzz many-defaults.conf "${lines}")

# ---------------------------------------------------------------- xen_config_fuzz
# (the first line is an ESP path, the rest a configuration)

string(REPEAT "EFI/" 17000 folders)
xbb_fuzz_seed(xen_config_fuzz deep-path.txt "${folders}xen.efi\n[global]\ndefault=nixos\n")
xbb_fuzz_seed(xen_config_fuzz long-options.txt
  "EFI/nixos/linux.efi\n[global]\ndefault=nixos\n\n[nixos]\noptions=${long}\nkernel=linux.efi\n")
set(sections "")
foreach(number RANGE 1 1800)
  string(APPEND sections "[s${number}]\noptions=console=vga\nkernel=linux.efi\n")
endforeach()
xbb_fuzz_seed(xen_config_fuzz many-sections.txt "EFI/nixos/linux.efi\n[global]\ndefault=nixos\n${sections}")

# ---------------------------------------------------------------- record_fuzz

# Nested past the record's depth limit, in a record's images.
xbb_nested(value "{\"x\":" "0" "}" 20000)
xbb_fuzz_seed(record_fuzz deep-images.json
  "{\"format\":\"xen-boot-builder record\",\"version\":1,\"images\":${value},\"sources\":{},\"foreign\":[]}")
# Breadth: two thousand images, each with a configuration, about 1 MB.
string(REPEAT "c" 300 config)
set(images "")
foreach(number RANGE 1 2000)
  string(APPEND images "\"EFI/xen/xen-generation-${number}.efi\":{\"size\":${number},\"mtime_ns\":1,\"digest\":\"d\",\"recipe\":\"r\",\"config\":\"${config}\"},\n")
endforeach()
xbb_fuzz_seed(record_fuzz many-images.json
  "{\"format\":\"xen-boot-builder record\",\"version\":1,\"images\":{${images}\"EFI/xen/last.efi\":{\"size\":0,\"mtime_ns\":0,\"digest\":\"\",\"recipe\":\"\",\"config\":\"\"}},\"sources\":{},\"foreign\":[]}")
