#!/usr/bin/env bash
# The layers, by what their sources include: common/ includes nothing of
# ours outside it; device/ only common/ and device/; server/ nothing from
# clients/ or tests/ (the daemon's demo guest lives in device/guest_sim).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
# check LAYER ALLOWED...: every '#include "x/..."' of one of our top-level
# folders in LAYER's sources names an allowed one.
check() {
  local layer="$1"
  shift
  local allowed="^($(IFS='|'; echo "$*"))/"
  while IFS= read -r line; do
    local file="${line%%:*}" included="${line#*\"}"
    included="${included%%\"*}"
    if [[ ! "$included" =~ $allowed ]]; then
      echo "layering: $file includes $included ($layer/ may include only: $*)"
      status=1
    fi
  done < <(grep -rn --include='*.cc' --include='*.h' \
             -E '^#include "(common|device|server|clients|tests)/' "$layer" || true)
}
check common common
check device common device
check server common device server
[[ $status -eq 0 ]] && echo "layering check: common < device < server, nothing of clients/ below"
exit "$status"
