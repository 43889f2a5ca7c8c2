#!/usr/bin/env bash
# Installs (as root) or names (as a user) the packages of backports.txt from bookworm-backports.
# The suite is added only if no apt source has it, and pinned at priority 100 (the backports
# default, written down so it holds): `apt-get upgrade` takes nothing from it, and only the
# packages named here are installed from it, by name/bookworm-backports.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wanted=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/backports.txt")
missing=()
for p in $wanted; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "Missing from bookworm-backports; as root:" >&2
    echo "  echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee /etc/apt/sources.list.d/bookworm-backports.list" >&2
    echo "  sudo apt-get update && sudo apt-get install ${missing[*]/%//bookworm-backports}" >&2
    exit 1
fi
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' >/etc/apt/sources.list.d/jpki-bookworm-backports.list
fi
cat >/etc/apt/preferences.d/jpki-bookworm-backports <<'PIN'
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
PIN
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]/%//bookworm-backports}" >/dev/null
