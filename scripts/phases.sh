# Sourced by .ci/run and scripts/test: `phase NAME command…` runs a command and records how long
# it took, so a run ends with its time by phase (CI allows 90 minutes; see docs/testing.md).
# The record is the file named by $PHASES_FILE (one shared by nested scripts), printed by
# `phases_report`.
if [ -z "${PHASES_FILE:-}" ]; then
  PHASES_FILE=$(mktemp)
  export PHASES_FILE
fi

phase() {
  local name=$1 start status
  shift
  start=$(date +%s)
  status=0
  "$@" || status=$?
  printf '%s\t%s\t%s\n' "$name" "$(($(date +%s) - start))" "$status" >>"$PHASES_FILE"
  return "$status"
}

phases_report() {
  [ -s "$PHASES_FILE" ] || return 0
  echo "== time by phase =="
  awk -F'\t' '{ total += $2; printf "%-34s %4d:%02d%s\n", $1, $2 / 60, $2 % 60, ($3 == 0 ? "" : "  (failed, exit " $3 ")") }
    END { printf "%-34s %4d:%02d\n", "total", total / 60, total % 60 }' "$PHASES_FILE"
}
