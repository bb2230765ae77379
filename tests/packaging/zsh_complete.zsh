# zsh -f zsh_complete.zsh OUT FOLDER LINE
# Types LINE and a TAB into an interactive zsh (on a pseudo-terminal) that
# loads the completions in FOLDER with compinit, and appends every word the
# completion offers to OUT, one a line, then a line `--done--`.
zmodload zsh/zpty
out=$1 folder=$2 line=$3
zpty shell zsh -f -i
zpty -w shell "fpath=(${(q)folder} \$fpath); autoload -Uz compinit; compinit -u -D"
# Each compadd call that adds words (rather than only filling an array for
# its caller) also writes the words that match what is typed.
zpty -w shell 'compadd() {
  if (( ! ${@[(I)-[OAD]]} )); then
    local -a offered
    builtin compadd -O offered "$@"
    (( $#offered )) && print -rl -- $offered >> '"${(q)out}"'
  fi
  builtin compadd "$@"
}'
zpty -w shell "comppostfuncs=(done_completing); done_completing() { print -r -- --done-- >> ${(q)out} }"
zpty -w -n shell "$line"$'\t'
repeat 200; do
  [[ -f $out ]] && grep -qx -- --done-- $out && break
  sleep 0.1
done
zpty -d shell
