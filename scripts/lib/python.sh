# Sourced by scripts/setup and scripts/gateway: pick the newest CPython >= 3.13.0 that can make a
# venv, reading each candidate's real version by running it (a pyenv shim named python3.13 may
# exist on PATH and fail). Sets best (its path) and best_version, or prints what it looked for
# and exits 1.

candidates=()
[ -n "${TK970_PYTHON:-}" ] && candidates+=("$TK970_PYTHON")
for name in python3.14 python3.13; do
  path=$(command -v "$name" 2>/dev/null || true)
  [ -n "$path" ] && candidates+=("$path")
done
candidates+=(/usr/bin/python3.14 /usr/bin/python3.13 /usr/local/bin/python3.14 /usr/local/bin/python3.13)
for path in "$HOME"/.pyenv/versions/3.1[34].*/bin/python; do candidates+=("$path"); done
# Inside ../shared/tools/py314-root the distribution's python3 is the one to use.
command -v python3 >/dev/null 2>&1 && candidates+=("$(command -v python3)")

best="" best_key=0 best_version=""
for candidate in "${candidates[@]}"; do
  [ -x "$candidate" ] || continue
  version=$("$candidate" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3]) if sys.implementation.name == "cpython" else None' 2>/dev/null) || continue
  case "$version" in [0-9]*.[0-9]*.[0-9]*) ;; *) continue ;; esac
  IFS=. read -r major minor micro <<<"$version"
  key=$((major * 10000 + minor * 100 + micro))
  # 3.13.0 is the oldest interpreter any pinned Home Assistant accepts (HA 2025.4.4).
  [ "$key" -ge 31300 ] || continue
  # The venv module must work (Debian splits it into python3.X-venv).
  "$candidate" -c 'import venv, ensurepip' >/dev/null 2>&1 || continue
  if [ "$key" -gt "$best_key" ]; then best=$candidate best_key=$key best_version=$version; fi
done

if [ -z "$best" ]; then
  cat >&2 <<MSG
${TK970_WHO:-setup}: no Python >= 3.13 (what the pinned Home Assistant and the gateway need) was found.
${TK970_WHO:-setup}: looked for: \$TK970_PYTHON${TK970_PYTHON:+ ($TK970_PYTHON)}, python3.14 and python3.13 on PATH,
${TK970_WHO:-setup}:   /usr/bin/python3.1[34], /usr/local/bin/python3.1[34], ~/.pyenv/versions/3.1[34].*, python3 on PATH
${TK970_WHO:-setup}: each needs CPython >= 3.13.0 with the venv module. Install one, for example:
${TK970_WHO:-setup}:   Debian 13: apt install python3.13 python3.13-venv
${TK970_WHO:-setup}:   any distro: pyenv install 3.13 (or 3.14), or set TK970_PYTHON=/path/to/python
MSG
  exit 1
fi
