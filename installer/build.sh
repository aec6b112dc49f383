#!/usr/bin/env bash
# Build an offline installation bundle: every wheel Noteward needs (llama-cpp-python built
# here from source), Noteward's own wheel, the resources and models folders, and an install
# script. Sign it with installer/sign.py; IT staff verify it, then run install.sh on a
# workstation with no network.
#   installer/build.sh OUT_DIR [SIGNING_KEY]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: installer/build.sh OUT_DIR [SIGNING_KEY]}
py=${PY:-python3.11}
mkdir -p "$out/wheels"
"$py" -m pip wheel --wheel-dir "$out/wheels" -r requirements/base.txt
"$py" -m pip wheel --no-deps --wheel-dir "$out/wheels" .
cp -r resources models "$out/"
cp requirements/base.txt "$out/requirements.txt"
cat > "$out/install.sh" <<'SH'
#!/usr/bin/env bash
# Offline install: no network is used. Verify the signature first:
#   python3 sign.py verify . noteward-release.pub
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/noteward}
python3.11 -m venv "$prefix/venv"
"$prefix/venv/bin/pip" install --no-index --find-links "$here/wheels" -r "$here/requirements.txt" noteward
cp -r "$here/resources" "$here/models" "$prefix/"
echo "installed; run: NOTEWARD_RESOURCES=$prefix/resources NOTEWARD_MODELS=$prefix/models $prefix/venv/bin/noteward"
SH
chmod +x "$out/install.sh"
cp installer/sign.py "$out/"
if [ -n "${2:-}" ]; then "$py" installer/sign.py sign "$out" "$2"; fi
echo "bundle in $out"
