# Sourced by the scripts in scripts/: apt_ensure TAG PKG... installs the
# Debian packages that are not installed yet (as root), saying which.
apt_ensure() {
  local tag=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$tag: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # apt's own progress goes to a log, shown only when it fails
    local log
    log=$(mktemp)
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      rm -f "$log"
      echo "$tag: installing packages failed" >&2
      return 1
    fi
    rm -f "$log"
  fi
}
