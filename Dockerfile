# synthct: the SynthRAD2025 synthetic-CT algorithm image for grand-challenge. One image per task:
#
#   docker build --network host --build-arg TASK=mri  -t synthct-task1 .    # Task 1: MRI  -> sCT
#   docker build --network host --build-arg TASK=cbct -t synthct-task2 .    # Task 2: CBCT -> sCT
#   ./export.sh                      # builds both and writes synthct-task1.tar.gz / synthct-task2.tar.gz
#
# The image runs process.py on /input (read-only) and writes /output/images/synthetic-ct/<name>.mha, as a non-root
# user, with no network: the model folders that resources/models.json routes for TASK (weights/<TASK>/...) are baked
# in under /opt/app and checked to load at build time. The build fails if they are missing. See docs/container.md.
#
# Build arguments:
#   TASK             mri (Task 1, default) or cbct (Task 2): which weights/<TASK>/ folder the image holds.
#   TORCH_INDEX_URL  optional package index for torch only (e.g. a PyTorch CUDA 12.x index, see docs/container.md).
#                    Empty (default): torch==<pin in requirements.txt> from PyPI, i.e. its CUDA build on Linux x86-64.

# --- stage 1: pick this task's model folders and the routing file -------------------------------------------------
FROM python:3.11-slim AS models
ARG TASK=mri
COPY resources/ /ctx/resources/
COPY weights/ /ctx/weights/
# World-readable copies (exported model folders are created 0700/0600); weights/<TASK>/ only.
RUN case "$TASK" in mri|cbct) ;; *) echo "build argument TASK must be mri or cbct, got '$TASK'" >&2; exit 1 ;; esac \
 && mkdir -p /sel/weights \
 && cp -R /ctx/resources /sel/resources \
 && if [ -d "/ctx/weights/$TASK" ]; then cp -R "/ctx/weights/$TASK" /sel/weights/; fi \
 && chmod -R u=rwX,go=rX /sel

# --- stage 2: the algorithm image ---------------------------------------------------------------------------------
FROM python:3.11-slim

# PYTHONUSERBASE fixes where `pip --user` installs and where Python finds it, whatever $HOME the runtime user gets.
# Caches and matplotlib's config go to /tmp (writable on grand-challenge); nnU-Net's torch.compile stays off.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUSERBASE=/home/algorithm/.local \
    PATH=/home/algorithm/.local/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    nnUNet_compile=f

RUN groupadd --gid 1000 algorithm \
 && useradd --no-log-init --uid 1000 --gid algorithm --create-home --home-dir /home/algorithm algorithm \
 && mkdir -p /opt/app /input /output \
 && chown algorithm:algorithm /opt/app /input /output

# Numeric, so that platforms which refuse root images can verify it without reading /etc/passwd.
USER 1000:1000
WORKDIR /opt/app

# Runtime dependencies first (the big, rarely changing layer). With TORCH_INDEX_URL set, torch comes from that index.
ARG TORCH_INDEX_URL=
COPY --chown=algorithm:algorithm requirements.txt /opt/app/
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        python -m pip install --user --no-cache-dir --index-url "$TORCH_INDEX_URL" \
            "$(grep -E '^torch==' requirements.txt)"; \
    fi \
 && python -m pip install --user --no-cache-dir -r requirements.txt

# The synthct package (pyproject.toml + src/), not editable; the source copy is removed after installing.
COPY --chown=algorithm:algorithm pyproject.toml README.md /opt/app/package/
COPY --chown=algorithm:algorithm src/ /opt/app/package/src/
RUN python -m pip install --user --no-cache-dir /opt/app/package \
 && rm -rf /opt/app/package

# Entry point, then the task's models and routing (root-owned, read-only for the runtime user).
COPY process.py /opt/app/
ARG TASK=mri
COPY --from=models /sel/ /opt/app/
LABEL org.opencontainers.image.title="synthct-${TASK}" \
      org.opencontainers.image.description="SynthRAD2025 synthetic CT from ${TASK} (grand-challenge algorithm)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      synthct.task="${TASK}"
# Fail the build unless every region of TASK is routed to a model folder that loads (as the runtime user).
RUN python -c "import sys; import pathlib; import synthct.challenge.routing as routing; \
    import synthct.network.checkpoint as checkpoint; task = sys.argv[1]; \
    models = pathlib.Path('resources/models.json'); \
    routes = [routing.resolve_route(models, task, r, 'cpu') for r in ('HN', 'TH', 'AB')]; \
    folders = sorted({(str(x.model_dir), x.options.folds) for x in routes}, key=str); \
    nets = [checkpoint.load_model_folder(d, f and list(f))[1] for d, f in folders]; \
    print(task, 'models load:', ', '.join(f'{d} ({len(n)} fold(s))' for (d, _), n in zip(folders, nets)))" "$TASK"

ENTRYPOINT ["python", "-m", "process"]
