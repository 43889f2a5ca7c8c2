#!/usr/bin/env bash
# Installs what the demo and the test suite need on Debian 12: the packages in apt-packages.txt,
# the Python packages in pip-requirements.txt, and, when no Rust toolchain >= 1.77 is on PATH,
# Debian's cargo-web/rustc-web (1.9x, bookworm-security). As a normal user it installs nothing:
# it names exactly what is missing and exits non-zero.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/apt-packages.txt"; }
pip_reqs() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/pip-requirements.txt"; }

rust_ok() {
    command -v cargo >/dev/null 2>&1 || return 1
    local v
    v=$(cargo --version | awk '{print $2}')
    [ "$(printf '%s\n' 1.77.0 "$v" | sort -V | head -n1)" = 1.77.0 ]
}

missing=()
for p in $(packages); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
need_rust=""
rust_ok || need_rust=1

if [ "$(id -u)" = 0 ]; then
    if [ ${#missing[@]} -gt 0 ] || [ -n "$need_rust" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        [ ${#missing[@]} -gt 0 ] && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        [ -n "$need_rust" ] && apt-get install -y -qq cargo-web rustc-web >/dev/null
    fi
    bash "$here/backports.sh"
    reqs=$(pip_reqs)
    if [ -n "$reqs" ]; then
        pip3 install -q --disable-pip-version-check $reqs 2>/dev/null \
            || pip3 install -q --disable-pip-version-check --break-system-packages $reqs
    fi
    exit 0
fi

ok=1
if [ ${#missing[@]} -gt 0 ]; then
    echo "Missing Debian packages; install them as root with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    ok=""
fi
bash "$here/backports.sh" || ok=""
if [ -n "$need_rust" ]; then
    echo "No Rust toolchain >= 1.77: sudo apt-get install cargo-web rustc-web (or use rustup)" >&2
    ok=""
fi
reqs=$(pip_reqs)
for r in $reqs; do
    name=${r%%[<>=]*}
    python3 -c "import importlib.metadata as m; m.version('$name')" 2>/dev/null || {
        echo "Missing Python package $name: pip3 install --user $r" >&2; ok=""; }
done
[ -n "$ok" ]
