# fish completion for xen-boot-builder: subcommands, verbosity words, options
# and their values (folders for --esp, --xbootldr, --extra-esp and --root, files for
# inspect).

set -l commands build plan verify inspect watch list
set -l verbosities quiet default info debug

complete -c xen-boot-builder -f

# First word: a subcommand, or a verbosity alone (the drop-in form).
set -l first "not __fish_seen_subcommand_from $commands $verbosities"
complete -c xen-boot-builder -n $first -a build -d 'write the Xen entries and images (the default)'
complete -c xen-boot-builder -n $first -a plan -d 'show what build would change; write nothing'
complete -c xen-boot-builder -n $first -a verify -d 'check that every Xen entry on the ESP is bootable'
complete -c xen-boot-builder -n $first -a inspect -d 'show the sections, build id and configuration of a Xen image'
complete -c xen-boot-builder -n $first -a watch -d 'run as a daemon, rebuilding when generations change'
complete -c xen-boot-builder -n $first -a list -d 'list generations and their Xen entries'

# A verbosity, first or after build, plan or watch.
set -l verbosity "not __fish_seen_subcommand_from $verbosities verify inspect list"
complete -c xen-boot-builder -n $verbosity -a quiet -d 'errors only'
complete -c xen-boot-builder -n $verbosity -a default -d 'one line, and warnings'
complete -c xen-boot-builder -n $verbosity -a info -d 'also what changed'
complete -c xen-boot-builder -n $verbosity -a debug -d 'also every step and decision'

complete -c xen-boot-builder -n "__fish_seen_subcommand_from inspect" -F

complete -c xen-boot-builder -l esp -x -a '(__fish_complete_directories)' -d 'ESP mount point'
complete -c xen-boot-builder -l xbootldr -x -a '(__fish_complete_directories)' -d 'XBOOTLDR partition mount point'
complete -c xen-boot-builder -l extra-esp -x -a '(__fish_complete_directories)' -d 'another ESP that gets the same Xen entries'
complete -c xen-boot-builder -l root -x -a '(__fish_complete_directories)' -d 'treat /nix/... paths as under this folder'
complete -c xen-boot-builder -l source -x -a 'entries profiles' -d 'where generations come from'
complete -c xen-boot-builder -l layout -x -a 'auto unified shared self-contained' -d 'how images are laid out on the ESP'
complete -c xen-boot-builder -l ucode -r -F -d 'microcode self-contained images embed'
complete -c xen-boot-builder -l sign-key -r -F -d 'sign every image with this key'
complete -c xen-boot-builder -l sign-cert -r -F -d 'certificate of the signing key'
complete -c xen-boot-builder -l lanzaboote -d 'for machines whose boot Lanzaboote installs'
complete -c xen-boot-builder -l keep-debug-sections -d 'keep the .debug_* sections of xen.efi'
complete -c xen-boot-builder -l debounce -x -d 'milliseconds to wait after a change before building'
complete -c xen-boot-builder -l helper-timeout -x -d 'seconds a program the tool runs may take'
complete -c xen-boot-builder -l debounce-max -x -d 'milliseconds a build waits at most while changes go on'
complete -c xen-boot-builder -l no-default -d 'leave loader/loader.conf alone'
complete -c xen-boot-builder -l rebuild -d 'ignore the record of the last run and write every image again'
complete -c xen-boot-builder -l json -d 'print JSON'
complete -c xen-boot-builder -s h -l help -d 'show the help'
complete -c xen-boot-builder -l version -d 'show the version'
