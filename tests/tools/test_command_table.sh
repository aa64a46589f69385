#!/usr/bin/env bash
# The command tables and the dispatcher agree: every command `starflow --help` lists (and every benchmark
# `starflow bench --help` lists) is accepted, answers its own --help with exit 0 and a usage line naming it;
# a name that is not listed is refused with exit 2 and one line naming it. Usage: test_command_table.sh STARFLOW
set -euo pipefail
starflow=$1
fail() { echo "FAIL: $*"; exit 1; }
listed() {  # the names under "commands:" in a usage text
  awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {exit}'
}
check_table() {  # $1: "starflow" or "starflow bench"
  local program=$1 names n help
  # shellcheck disable=SC2086
  names=$("$starflow" ${program#starflow} --help | listed)
  [[ -n $names ]] || fail "$program --help lists no commands"
  n=0
  for name in $names; do
    # shellcheck disable=SC2086
    help=$("$starflow" ${program#starflow} "$name" --help 2>&1) || fail "$program $name --help: exit status $?"
    grep -qE "usage: $program $name( |$)" <<< "$help" || fail "$program $name --help: no usage line naming it: ${help%%$'\n'*}"
    n=$((n + 1))
  done
  local status=0 out
  # shellcheck disable=SC2086
  out=$("$starflow" ${program#starflow} no-such-command 2>&1) || status=$?
  [[ $status == 2 ]] || fail "$program no-such-command: exit status $status, expected 2"
  grep -qF "unknown command 'no-such-command'" <<< "$out" || fail "$program no-such-command: $out"
  [[ $(wc -l <<< "$out") == 1 ]] || fail "$program no-such-command: more than one line: $out"
  echo "ok   $program: $n commands listed, each accepted with its own --help"
}
check_table "starflow"
check_table "starflow bench"
bench_names=$("$starflow" bench --help | listed | tr '\n' ' ')
for name in $bench_names; do
  "$starflow" --help | grep -E '^  bench ' | grep -qw "$name" || fail "starflow --help's bench line does not name '$name'"
done
echo "ok   starflow --help's bench line names every benchmark: $bench_names"
