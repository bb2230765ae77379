# bash completion for xen-boot-builder                     -*- shell-script -*-
# Needs nothing but bash: subcommands, verbosity words, options and their
# values (folders for --esp, --xbootldr, --extra-esp and --root, files for inspect).

_xen_boot_builder() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local prev=
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  # bash splits "--source=pr" into "--source", "=", "pr".
  if [[ $cur == = ]]; then
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    cur=
  elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
    prev=${COMP_WORDS[COMP_CWORD - 2]}
  fi

  local commands="build plan verify inspect watch list"
  local verbosities="quiet default info debug"
  local options="--esp --xbootldr --extra-esp --root --source --layout --ucode --sign-key --sign-cert --lanzaboote
    --keep-debug-sections --debounce --debounce-max --helper-timeout --no-default --rebuild --json --help --version"

  COMPREPLY=()
  case $prev in
    --esp | --xbootldr | --extra-esp | --root)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -d -- "$cur")
      return
      ;;
    --source)
      mapfile -t COMPREPLY < <(compgen -W "entries profiles" -- "$cur")
      return
      ;;
    --layout)
      mapfile -t COMPREPLY < <(compgen -W "auto unified shared self-contained" -- "$cur")
      return
      ;;
    --ucode | --sign-key | --sign-cert)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      return
      ;;
    --debounce | --debounce-max | --helper-timeout)
      return # milliseconds, seconds
      ;;
  esac

  if [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
    return
  fi

  # The words before the cursor that are neither options nor their values.
  local -a words=()
  local i word
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    case $word in
      --esp | --xbootldr | --extra-esp | --root | --source | --layout | --ucode | --sign-key | --sign-cert | --debounce | --debounce-max | --helper-timeout)
        [[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))
        ((i++))
        ;;
      -*) ;;
      *) words+=("$word") ;;
    esac
  done

  case ${#words[@]}:${words[0]} in
    0:)
      mapfile -t COMPREPLY < <(compgen -W "$commands $verbosities" -- "$cur")
      ;;
    1:build | 1:plan | 1:watch)
      mapfile -t COMPREPLY < <(compgen -W "$verbosities" -- "$cur")
      ;;
    1:inspect)
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$cur")
      ;;
  esac
}

complete -F _xen_boot_builder xen-boot-builder
