#!/usr/bin/env bash
# Installs a hookd .deb on this machine, checks what it installed, and removes it again (purge):
# the files and the conffile in their places, `hookd --version`, and `systemd-analyze verify` on
# the installed units, whose ExecStart must name the installed binary. systemd need not run.
# Usage: bash tools/check-package.sh build/package/hookd_<version>_<arch>.deb   (as root or with sudo)
set -euo pipefail
deb=${1:?usage: check-package.sh FILE.deb}
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)

if dpkg-query -W -f='${Status}' hookd 2>/dev/null | grep -q 'install ok installed'; then
  echo "check-package: hookd is already installed here; not touching it" >&2
  exit 1
fi
"${sudo_cmd[@]}" dpkg -i "$deb"
trap '"${sudo_cmd[@]}" dpkg --purge hookd >/dev/null' EXIT

depends=$(dpkg-deb -f "$deb" Depends)
echo "$depends"
# hookd is linked with jemalloc (docs/operations.md, "Memory allocator"): the package must pull it in.
[[ $depends == *libjemalloc2* ]] || { echo "check-package: Depends does not name libjemalloc2" >&2; exit 1; }
for f in /usr/bin/hookd /usr/bin/hookctl /lib/systemd/system/hookd.service \
  /lib/systemd/system/hookd.socket /etc/hookd/hookd.toml /usr/share/doc/hookd/copyright \
  /usr/share/doc/hookd/operations.md; do
  [[ -f $f ]] || { echo "check-package: $f is missing" >&2; exit 1; }
done
dpkg-query -W -f='${Conffiles}\n' hookd | grep -q '^ /etc/hookd/hookd.toml ' ||
  { echo "check-package: /etc/hookd/hookd.toml is not a conffile" >&2; exit 1; }
grep -q '^ExecStart=/usr/bin/hookd ' /lib/systemd/system/hookd.service ||
  { echo "check-package: the unit does not start /usr/bin/hookd" >&2; exit 1; }

version=$(hookd --version)
[[ $version == "hookd "* ]] || { echo "check-package: hookd --version said '$version'" >&2; exit 1; }
hookctl --help >/dev/null
# Warnings count as failures: verify prints nothing for clean units.
out=$(systemd-analyze verify --man=no /lib/systemd/system/hookd.service \
  /lib/systemd/system/hookd.socket 2>&1)
[[ -z $out ]] || { echo "check-package: systemd-analyze verify: $out" >&2; exit 1; }

echo "check-package: $deb installs, runs ($version) and verifies"
