#!/bin/bash
# Boots systemd as PID 1 of a private PID + mount namespace, with the
# shipped unit, sysusers.d and tmpfiles.d files installed as a package
# would, for tests/systemd_e2e.rs. Nothing outside the namespace changes:
# /etc, /usr and /var are overlays whose upper layers live on the
# namespace's own tmpfs /run.
#
#   sandbox.sh boot WORK
#
# WORK (made by the test) holds:
#   repo-systemd/  a copy of the repository's systemd/ directory
#   pve-guac-sync  the binary under test (bind-mounted as /usr/bin/pve-guac-sync)
#                  or, for the installed package, the file `installed` instead
#                  of repo-systemd/ and pve-guac-sync: the unit, sysusers.d,
#                  tmpfiles.d files and binary the package put under /usr are
#                  used as they are
#   dropin.conf    the test's drop-in for pve-guac-sync.service
#   credstore/     files copied to /etc/credstore (LoadCredential= sources)
# and receives units/ (the unit search path) and ready (written just before
# systemd starts).
#
# PID 1 of the namespace ignores SIGTERM: the test ends it with SIGKILL.
set -euo pipefail

boot() {
    exec unshare --pid --mount --fork --mount-proc --propagation private "$0" init "$1"
}

overlay() {
    local dir=$1 layers=/run/sandbox-overlay/$1
    mkdir -p "$layers/upper" "$layers/work"
    mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$layers/upper,workdir=$layers/work" "/$dir"
}

# Only what the test needs: empty targets and journald.
write_units() {
    local units=$1 target
    rm -rf "$units"
    mkdir -p "$units"
    for target in sysinit basic local-fs swap shutdown umount multi-user network-online; do
        printf '[Unit]\nDescription=%s (sandbox)\n' "$target" >"$units/$target.target"
    done
    printf '[Unit]\nDescription=default (sandbox)\nWants=systemd-journald.service\n' \
        >"$units/default.target"
    cp /lib/systemd/system/systemd-journald.service \
        /lib/systemd/system/systemd-journald.socket \
        /lib/systemd/system/systemd-journald-dev-log.socket "$units/"
}

install_package_files() {
    local work=$1 unit
    if [ -e "$work/installed" ]; then
        unit=/usr/lib/systemd/system/pve-guac-sync.service
    else
        install -m 0644 "$work/repo-systemd/sysusers.d/pve-guac-sync.conf" /usr/lib/sysusers.d/
        install -m 0644 "$work/repo-systemd/tmpfiles.d/pve-guac-sync.conf" /usr/lib/tmpfiles.d/
        touch /usr/bin/pve-guac-sync
        mount --bind "$work/pve-guac-sync" /usr/bin/pve-guac-sync
        unit=$work/repo-systemd/pve-guac-sync.service
    fi
    systemd-sysusers /usr/lib/sysusers.d/pve-guac-sync.conf
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/pve-guac-sync.conf
    install -d -m 0700 /etc/credstore
    local credential
    for credential in "$work"/credstore/*; do
        [ -f "$credential" ] && install -m 0600 "$credential" /etc/credstore/
    done
    # A copy: SYSTEMD_UNIT_PATH cannot include /usr/lib/systemd/system
    # without pulling in the host's *.wants/ units.
    install -m 0644 "$unit" "$work/units/"
    install -d "$work/units/pve-guac-sync.service.d"
    install -m 0644 "$work/dropin.conf" "$work/units/pve-guac-sync.service.d/test.conf"
}

init() {
    local work=$1
    mount -t tmpfs -o mode=0755 tmpfs /run
    overlay etc
    overlay usr
    overlay var
    write_units "$work/units"
    install_package_files "$work"
    # As on a booted host: systemd moves each service's credentials mount
    # into place from a helper's namespace, which must propagate back.
    # (The namespace was made private, so nothing reaches the host.)
    mount --make-rshared /
    export SYSTEMD_UNIT_PATH=$work/units
    : >"$work/ready"
    exec /lib/systemd/systemd --system --unit=default.target
}

case "${1:-}" in
boot) boot "$2" ;;
init) init "$2" ;;
*)
    echo "usage: $0 boot WORK" >&2
    exit 2
    ;;
esac
