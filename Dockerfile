# synthct: the SynthRAD2025 synthetic-CT algorithm image for grand-challenge. One image per task:
#
#   docker build --network host --platform linux/amd64 --build-arg TASK=mri  -t synthct-task1 .   # Task 1: MRI
#   docker build --network host --platform linux/amd64 --build-arg TASK=cbct -t synthct-task2 .   # Task 2: CBCT
#   ./export.sh [--weights baked|tarball]   # both images + model-task1.tar.gz / model-task2.tar.gz (docs/container.md)
#
# The image runs process.py on /input (read-only) and writes /output/images/synthetic-ct/<name>.mha, as a non-root
# user, with no network. Its models come from the platform's model tarball extracted to /opt/ml/model/ (a models.json
# or resources/models.json there) when there is one, else from the image (/opt/app/resources/models.json).
#
# Build arguments:
#   BASE_IMAGE       the base of both stages (default python:3.11-slim). Offline (no Docker Hub): a local stand-in
#                    built by scripts/standin_base.sh, e.g. `./export.sh --base-image synthct-standin:bookworm`
#                    (docs/container.md); never upload an image built on a stand-in.
#   TASK             mri (Task 1, default) or cbct (Task 2).
#   WEIGHTS          baked (default): weights/<TASK>/ and resources/ are copied to /opt/app and checked to load at
#                    build time (the build fails if a region has no model); tarball: the image holds no weights and
#                    needs the model tarball at /opt/ml/model (recommended for real, multi-GB weights).
#   TORCH_CUDA       the CUDA build of torch: cu126 (default; CUDA 12.6, driver >= 525, covers the T4), cu130,
#                    cpu, ... It is recorded in the label synthct.torch and checked against the installed torch.
#   TORCH_VERSION    must equal the torch pin of requirements.txt (checked), for the label.
#   TORCH_INDEX_URL  where torch + torchvision come from: auto (default) = https://download.pytorch.org/whl/TORCH_CUDA;
#                    none = no separate install (torch from the base image, or PyPI's CUDA 13 build via
#                    requirements.txt; CI's stand-in base preinstalls the CPU build); or any index URL.

ARG BASE_IMAGE=python:3.11-slim

# --- stage 1: pick this task's model folders and the routing file -------------------------------------------------
FROM ${BASE_IMAGE} AS models
ARG TASK=mri
ARG WEIGHTS=baked
COPY resources/ /ctx/resources/
COPY weights/ /ctx/weights/
# World-readable copies (exported model folders are created 0700/0600); weights/<TASK>/ only, nothing for "tarball".
RUN case "$TASK" in mri|cbct) ;; *) echo "build argument TASK must be mri or cbct, got '$TASK'" >&2; exit 1 ;; esac \
 && case "$WEIGHTS" in baked|tarball) ;; *) echo "build argument WEIGHTS must be baked or tarball, got '$WEIGHTS'" >&2; exit 1 ;; esac \
 && mkdir -p /sel \
 && if [ "$WEIGHTS" = baked ]; then \
        mkdir -p /sel/weights && cp -R /ctx/resources /sel/resources \
        && if [ -d "/ctx/weights/$TASK" ]; then cp -R "/ctx/weights/$TASK" /sel/weights/; fi; \
    fi \
 && chmod -R u=rwX,go=rX /sel

# --- stage 2: the algorithm image ---------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# PYTHONUSERBASE fixes where `pip --user` installs and where Python finds it, whatever $HOME the runtime user gets.
# Caches and matplotlib's config go to /tmp (writable on grand-challenge); nnU-Net's torch.compile stays off.
# SYNTHCT_TIME_BUDGET: the per-case budget (s) of process.py, a margin under grand-challenge's default 20-min job
# limit, which also covers the platform's start, the model download + extraction and the upload (docs/container.md).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUSERBASE=/home/algorithm/.local \
    PATH=/home/algorithm/.local/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    nnUNet_compile=f \
    SYNTHCT_TIME_BUDGET=900

RUN groupadd --gid 1000 algorithm \
 && useradd --no-log-init --uid 1000 --gid algorithm --create-home --home-dir /home/algorithm algorithm \
 && mkdir -p /opt/app /input /output /opt/ml/model \
 && chown algorithm:algorithm /opt/app /input /output /opt/ml/model

# Numeric, so that platforms which refuse root images can verify it without reading /etc/passwd.
USER 1000:1000
WORKDIR /opt/app

# Runtime dependencies first (the big, rarely changing layer): torch + torchvision of the TORCH_CUDA build from
# their index (torchvision must match torch's build: PyPI's is a CUDA 13 build), then requirements.txt, which they
# satisfy (2.13.0+cu126 meets ==2.13.0). The last step fails unless the installed torch is TORCH_VERSION+TORCH_CUDA.
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu126
ARG TORCH_INDEX_URL=auto
COPY --chown=algorithm:algorithm requirements.txt /opt/app/
RUN pin=$(sed -n 's/^torch==//p' requirements.txt) \
 && if [ "$pin" != "$TORCH_VERSION" ]; then \
        echo "TORCH_VERSION=$TORCH_VERSION differs from requirements.txt's torch==$pin" >&2; exit 1; \
    fi \
 && case "$TORCH_INDEX_URL" in \
        none) ;; \
        auto) python -m pip install --user --no-cache-dir --index-url "https://download.pytorch.org/whl/$TORCH_CUDA" \
                  "$(grep -E '^torch==' requirements.txt)" "$(grep -E '^torchvision==' requirements.txt)" ;; \
        *) python -m pip install --user --no-cache-dir --index-url "$TORCH_INDEX_URL" \
               "$(grep -E '^torch==' requirements.txt)" "$(grep -E '^torchvision==' requirements.txt)" ;; \
    esac \
 && python -m pip install --user --no-cache-dir -r requirements.txt \
 && python -c "import sys, torch; want = sys.argv[1] + '+' + sys.argv[2]; got = torch.__version__; \
    ok = got == want or (sys.argv[2] == 'pypi' and got == sys.argv[1]); \
    print('torch', got, 'CUDA build', torch.version.cuda); \
    sys.exit(0 if ok else f'installed torch {got} is not the TORCH_CUDA build {want}')" "$TORCH_VERSION" "$TORCH_CUDA"

# The synthct package (pyproject.toml + src/), not editable; the source copy is removed after installing.
COPY --chown=algorithm:algorithm pyproject.toml README.md /opt/app/package/
COPY --chown=algorithm:algorithm src/ /opt/app/package/src/
RUN python -m pip install --user --no-cache-dir /opt/app/package \
 && rm -rf /opt/app/package

# Entry point, then the task's models and routing (root-owned, read-only for the runtime user).
COPY process.py /opt/app/
ARG TASK=mri
ARG WEIGHTS=baked
ENV SYNTHCT_TASK=${TASK}
COPY --from=models /sel/ /opt/app/
LABEL org.opencontainers.image.title="synthct-${TASK}" \
      org.opencontainers.image.description="SynthRAD2025 synthetic CT from ${TASK} (grand-challenge algorithm)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      synthct.task="${TASK}" \
      synthct.weights="${WEIGHTS}" \
      synthct.torch="${TORCH_VERSION}+${TORCH_CUDA}"
# Baked: fail the build unless every region of TASK is routed to a model folder that loads (as the runtime user).
# Tarball: the entry point must at least start (the models are checked by export.sh against the model tarball).
RUN if [ "$WEIGHTS" = baked ]; then python -m process --device cpu --check-models; \
    else python -c "import synthct.challenge.algorithm, synthct.inference.predictor"; fi

ENTRYPOINT ["python", "-m", "process"]
