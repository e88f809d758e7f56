#!/usr/bin/env bash
# Build the grand-challenge images and save them for upload: <name>-task1.tar.gz (Task 1, MRI) and
# <name>-task2.tar.gz (Task 2, CBCT), each `docker save <name>-taskN | gzip`, plus the platform's model tarballs
# model-task1.tar.gz / model-task2.tar.gz (resources/models.json + weights/<task>/, `tar -czf ... -C model .`), each
# checked to load by running the built image with it extracted at /opt/ml/model (read-only, no network).
#
#   ./export.sh                          # both tasks, weights baked into the images, name "synthct", files in .
#   ./export.sh --weights tarball        # images without weights: upload model-taskN.tar.gz as the algorithm's Model
#   ./export.sh --task mri --name myalgo --out dist/
#   DOCKER_BUILD_ARGS="--build-arg TORCH_CUDA=cu130" ./export.sh
#   DOCKER_BUILD_ARGS="--build-arg TORCH_INDEX_URL=none --build-arg TORCH_CUDA=cpu" \
#       ./export.sh --base-image synthct-standin:bookworm   # offline: scripts/standin_base.sh built the base
#
# Options: --task mri|cbct|all (default all), --weights baked|tarball (default baked), --name NAME (default synthct),
# --out DIR (default .), --context DIR (build context holding the Dockerfile; default: this script's folder),
# --base-image IMAGE (a local image replacing the Dockerfile's python:3.11-slim, e.g. the stand-in that
# scripts/standin_base.sh builds where Docker Hub is unreachable; it must already be in the local image store).
# Needs a running Docker daemon (checked first). Regions still routed to DEMO models get one WARNING line per task.
# Environment: DOCKER (docker binary, default docker), DOCKER_BUILD_ARGS (extra `docker build` arguments, split on
# spaces). Builds with --network host, which a daemon started with --bridge=none needs and which is harmless
# elsewhere, and --platform linux/amd64, which grand-challenge requires (docs/container.md).
#
# Upload only images built against the real python:3.11-slim base with trained weights in weights/: an image built on
# CI's stand-in base carries a CPU-only torch and the CI machine's CA bundle, and CI's smoke-test weights are random.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
task=all
weights=baked
name=synthct
out=.
context=$here
base_image=

usage() { sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --task) task=${2:?--task needs a value}; shift 2 ;;
        --weights) weights=${2:?--weights needs a value}; shift 2 ;;
        --name) name=${2:?--name needs a value}; shift 2 ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        --context) context=${2:?--context needs a value}; shift 2 ;;
        --base-image) base_image=${2:?--base-image needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "export.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done

case $task in
    all) tasks=(mri cbct) ;;
    mri|cbct) tasks=("$task") ;;
    *) echo "export.sh: --task must be mri, cbct or all, got '$task'" >&2; exit 2 ;;
esac
case $weights in
    baked|tarball) ;;
    *) echo "export.sh: --weights must be baked or tarball, got '$weights'" >&2; exit 2 ;;
esac
if [[ ! -f $context/Dockerfile ]]; then
    echo "export.sh: no Dockerfile in build context $context" >&2
    exit 2
fi

docker=${DOCKER:-docker}
read -r -a extra_args <<< "${DOCKER_BUILD_ARGS:-}"
if ! "$docker" info >/dev/null 2>&1; then
    echo "export.sh: no Docker daemon answers '$docker info': start one (e.g. 'sudo dockerd &';" \
         "docs/container.md §3 starts a private one) or point DOCKER_HOST at it" >&2
    exit 1
fi
if [[ -n $base_image ]]; then
    if ! "$docker" image inspect "$base_image" >/dev/null 2>&1; then
        echo "export.sh: --base-image '$base_image' is not in the local image store: build it first" \
             "(sudo bash scripts/standin_base.sh --tag $base_image; docs/container.md §4)" >&2
        exit 1
    fi
    extra_args=(--build-arg "BASE_IMAGE=$base_image" ${extra_args[@]+"${extra_args[@]}"})
    echo "export.sh: WARNING: building on the local base image $base_image instead of python:3.11-slim: upload" \
         "only images built on the real base" >&2
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
partial=
stage=
demo_warnings=()
trap 'if [[ -n $partial ]]; then rm -f "$partial"; fi; if [[ -n $stage ]]; then rm -rf "$stage"; fi' EXIT

# model_tarball TASK FILE: resources/models.json + weights/TASK/ of the build context as the platform's Model
# (`tar -czf FILE -C model .`), world-readable (exported model folders are 0700/0600), written via FILE.partial.
model_tarball() {
    local t=$1 file=$2
    stage=$(mktemp -d)
    mkdir -p "$stage/model/weights"
    cp -R "$context/resources" "$stage/model/resources"
    cp -R "$context/weights/$t" "$stage/model/weights/$t"
    chmod -R u=rwX,go=rX "$stage/model"
    partial="$file.partial"
    tar -czf "$partial" -C "$stage/model" .
    mv "$partial" "$file"
    partial=
}

# check_model_tarball IMAGE FILE: extract FILE read-only at /opt/ml/model and load every model routed for the task.
check_model_tarball() {
    local image=$1 file=$2
    mkdir -p "$stage/check"
    tar -xzf "$file" -C "$stage/check"
    chmod -R go+rX "$stage/check"
    local rc=0
    "$docker" run --rm --network none -v "$stage/check:/opt/ml/model:ro" "$image" --device cpu --check-models \
        2> "$stage/check.log" || rc=$?
    cat "$stage/check.log" >&2
    [[ $rc == 0 ]] || { echo "export.sh: the model check of $file in $image failed (exit $rc)" >&2; exit 1; }
    demo_warnings+=("$(sed -n 's/.* WARNING .*: \(DEMO models serve .*\)/\1/p' "$stage/check.log")")
    rm -rf "$stage"
    stage=
}

for t in "${tasks[@]}"; do
    case $t in mri) n=1 ;; cbct) n=2 ;; esac
    image="$name-task$n"
    file="$out/$image.tar.gz"
    if ! compgen -G "$context/weights/$t/*/synthct.json" > /dev/null; then
        echo "export.sh: no model folder in $context/weights/$t/ (synthct export TRAINING_RESULTS weights/$t/NAME)" >&2
        exit 1
    fi
    if grep -qs 'RANDOM WEIGHTS' "$context"/weights/"$t"/*/synthct.json; then
        echo "export.sh: WARNING: weights/$t/ in $context holds RANDOM-WEIGHT models: $image is a plumbing test," \
             "not a submission" >&2
    fi
    echo "export.sh: building $image (TASK=$t, WEIGHTS=$weights) from $context"
    start=$SECONDS
    "$docker" build --network host --platform linux/amd64 --build-arg "TASK=$t" --build-arg "WEIGHTS=$weights" \
        ${extra_args[@]+"${extra_args[@]}"} -t "$image" "$context"
    echo "export.sh: built $image in $((SECONDS - start)) s"
    model="$out/model-task$n.tar.gz"
    start=$SECONDS
    model_tarball "$t" "$model"
    check_model_tarball "$image" "$model"
    size=$(stat -c %s "$model")
    echo "export.sh: wrote and checked $model in $((SECONDS - start)) s ($size bytes," \
         "$(numfmt --to=iec-i --suffix=B "$size"))"
    start=$SECONDS
    partial="$file.partial"
    "$docker" save "$image" | gzip -c > "$partial"
    mv "$partial" "$file"
    partial=
    size=$(stat -c %s "$file")
    echo "export.sh: saved $image in $((SECONDS - start)) s: $file" \
         "($size bytes, $(numfmt --to=iec-i --suffix=B "$size"))"
done
# Repeated at the end, one line per task, so that they are not lost in the build output.
for w in ${demo_warnings[@]+"${demo_warnings[@]}"}; do
    if [[ -n $w ]]; then echo "export.sh: WARNING: $w" >&2; fi
done
exit 0
