#!/usr/bin/env bash
# Build the grand-challenge images and save them for upload: <name>-task1.tar.gz (Task 1, MRI) and
# <name>-task2.tar.gz (Task 2, CBCT), each `docker save <name>-taskN | gzip`.
#
#   ./export.sh                          # both tasks, name "synthct", files in the current folder
#   ./export.sh --task mri --name myalgo --out dist/
#   DOCKER_BUILD_ARGS="--build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126" ./export.sh
#
# Options: --task mri|cbct|all (default all), --name NAME (default synthct), --out DIR (default .), --context DIR
# (build context holding the Dockerfile; default: this script's folder). Environment: DOCKER (docker binary, default
# docker), DOCKER_BUILD_ARGS (extra `docker build` arguments, split on spaces). Builds with --network host, which a
# daemon started with --bridge=none needs and which is harmless elsewhere (docs/container.md).
#
# Upload only images built against the real python:3.11-slim base with trained weights in weights/: an image built on
# CI's stand-in base carries a CPU-only torch and the CI machine's CA bundle, and CI's smoke-test weights are random.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
task=all
name=synthct
out=.
context=$here

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --task) task=${2:?--task needs a value}; shift 2 ;;
        --name) name=${2:?--name needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        --context) context=${2:?--context needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "export.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

case $task in
    all) tasks=(mri cbct) ;;
    mri|cbct) tasks=("$task") ;;
    *) echo "export.sh: --task must be mri, cbct or all, got '$task'" >&2; exit 2 ;;
esac
if [[ ! -f $context/Dockerfile ]]; then
    echo "export.sh: no Dockerfile in build context $context" >&2
    exit 2
fi

docker=${DOCKER:-docker}
read -r -a extra_args <<< "${DOCKER_BUILD_ARGS:-}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
partial=
trap 'if [[ -n $partial ]]; then rm -f "$partial"; fi' EXIT

for t in "${tasks[@]}"; do
    case $t in mri) n=1 ;; cbct) n=2 ;; esac
    image="$name-task$n"
    file="$out/$image.tar.gz"
    if grep -qs 'RANDOM WEIGHTS' "$context"/weights/"$t"/*/synthct.json; then
        echo "export.sh: WARNING: weights/$t/ in $context holds RANDOM-WEIGHT models: $image is a plumbing test," \
             "not a submission" >&2
    fi
    echo "export.sh: building $image (TASK=$t) from $context"
    start=$SECONDS
    "$docker" build --network host --build-arg "TASK=$t" ${extra_args[@]+"${extra_args[@]}"} -t "$image" "$context"
    echo "export.sh: built $image in $((SECONDS - start)) s"
    start=$SECONDS
    partial="$file.partial"
    "$docker" save "$image" | gzip -c > "$partial"
    mv "$partial" "$file"
    partial=
    size=$(stat -c %s "$file")
    echo "export.sh: saved $image in $((SECONDS - start)) s: $file" \
         "($size bytes, $(numfmt --to=iec-i --suffix=B "$size"))"
done
