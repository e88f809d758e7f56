#!/usr/bin/env bash
# Build a local stand-in for the Dockerfile's base image (python:3.11-slim) from the registries a machine without
# Docker Hub can still reach: a Debian mirror (debootstrap) and PyPI / a local wheel folder (the CPU torch wheel).
# Then build the images with it (docs/container.md §4):
#
#   sudo bash scripts/standin_base.sh                       # tag synthct-standin:bookworm
#   DOCKER_BUILD_ARGS="--build-arg TORCH_INDEX_URL=none --build-arg TORCH_CUDA=cpu" \
#       ./export.sh --task mri --base-image synthct-standin:bookworm
#
# Options: --tag TAG (default synthct-standin:bookworm), --cache DIR (the debootstrap rootfs tar is kept there;
# default /var/cache/synthct-ci), --torch-wheel FILE (a CPU torch wheel for cp311 instead of `pip download` of
# requirements.txt's torch pin).
# Environment: DOCKER (docker client, default docker), PYTHON (runs `pip download`, default python3), DEBIAN_MIRROR
# (default: the mirror apt uses for bookworm), DEBOOTSTRAP / CHROOT (the programs, default debootstrap / chroot).
# Needs root (debootstrap, chroot) and a running Docker daemon. The result carries this machine's CA bundle and a
# CPU-only torch: never upload an image built on it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tag=synthct-standin:bookworm
cache=/var/cache/synthct-ci
wheel_file=
SUITE=bookworm                      # Debian release whose python3 (3.11) matches python:3.11-slim
INCLUDE=python3,python3-pip,python3-venv,ca-certificates,passwd
DOCKER=${DOCKER:-docker}
PY=${PYTHON:-python3}
DEBOOTSTRAP=${DEBOOTSTRAP:-debootstrap}
CHROOT=${CHROOT:-chroot}

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "standin_base.sh: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --tag) tag=${2:?--tag needs a value}; shift 2 ;;
        --cache) cache=${2:?--cache needs a value}; shift 2 ;;
        --torch-wheel) wheel_file=${2:?--torch-wheel needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "standin_base.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[[ -z $wheel_file || -f $wheel_file ]] || die "--torch-wheel: no such file '$wheel_file'"
"$DOCKER" info >/dev/null 2>&1 || die "no Docker daemon answers '$DOCKER info' (start dockerd: docs/container.md §3)"

W=$(mktemp -d /tmp/synthct-standin.XXXXXX)
cleanup() {  # debootstrap may leave /proc or /sys mounted in the rootfs when it fails: unmount, deepest first
    awk -v w="$W/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m"; done
    rm -rf "$W"
}
trap cleanup EXIT

debian_mirror() {
    if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; return; fi
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
        { u = ""; ok = 0
          for (i = 1; i <= NF; i++) {
              if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
              if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/); for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 }
          }
          if (u != "" && ok) { print u; exit } }')
    if [[ -z $m ]]; then
        m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/\[[^]]*\]//' \
            | awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }')
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# 1. the rootfs (cached as a tar), imported as local/bookworm-python
rootfs_tar=$cache/$SUITE-minbase-$(echo "$INCLUDE" | md5sum | cut -c1-8).tar
if [[ ! -s $rootfs_tar ]]; then
    mirror=$(debian_mirror)
    echo "standin_base.sh: debootstrap $SUITE from $mirror (cached afterwards as $rootfs_tar)"
    mkdir -p "$cache"
    "$DEBOOTSTRAP" --variant=minbase --include="$INCLUDE" "$SUITE" "$W/rootfs" "$mirror" > "$W/debootstrap.log" 2>&1 \
        || { tail -n 30 "$W/debootstrap.log" >&2; die "debootstrap failed"; }
    "$CHROOT" "$W/rootfs" sh -c 'apt-get clean && rm -rf /var/lib/apt/lists/*'
    tar -C "$W/rootfs" -cf "$rootfs_tar.partial" . && mv "$rootfs_tar.partial" "$rootfs_tar"
    rm -rf "$W/rootfs"
else
    echo "standin_base.sh: using cached rootfs $rootfs_tar"
fi
"$DOCKER" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' "$rootfs_tar" local/bookworm-python >/dev/null

# 2. the CPU torch wheel of requirements.txt's pin (the real base has no torch; the Dockerfile then installs none)
torch_pin=$(grep -E '^torch==' requirements.txt) || die "requirements.txt pins no torch==<version>"
mkdir -p "$W/standin/wheel"
if [[ -n $wheel_file ]]; then
    cp "$wheel_file" "$W/standin/wheel/"
else
    # pip's own configuration applies (e.g. a find-links folder holding the CPU build).
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
        --abi cp311 --platform manylinux_2_28_x86_64 --dest "$W/standin/wheel" "$torch_pin"
fi
wheel=$(basename "$(ls "$W"/standin/wheel/torch-*.whl 2>/dev/null | head -n 1)")
[[ $wheel == torch-*+cpu-cp311-* ]] || die "got '$wheel', not a CPU torch wheel for cp311: pass --torch-wheel FILE"
echo "standin_base.sh: torch wheel $wheel"

# 3. the stand-in: this machine's CA bundle (HTTPS proxies), no EXTERNALLY-MANAGED, python/pip links, torch
cp /etc/ssl/certs/ca-certificates.crt "$W/standin/host-ca.crt"
cat > "$W/standin/Dockerfile" <<EOF
FROM local/bookworm-python
COPY host-ca.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \\
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
RUN rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED \\
 && ln -s /usr/bin/python3 /usr/local/bin/python && ln -s /usr/bin/pip3 /usr/local/bin/pip
RUN --mount=type=bind,source=wheel,target=/mnt/wheel pip install --no-cache-dir /mnt/wheel/$wheel
EOF
"$DOCKER" build --network host -t "$tag" "$W/standin"
"$DOCKER" run --rm --network none "$tag" python -W ignore -c \
    'import sys, torch; print("stand-in:", sys.version.split()[0], "torch", torch.__version__)'
echo "standin_base.sh: built $tag (use: ./export.sh --base-image $tag)"
