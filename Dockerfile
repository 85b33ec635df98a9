# The platform's image: Ray 2.60.0 on Python 3.11 (CPU) plus the project, installed with the
# exact versions of requirements.lock. Used by docker-compose.yml (built by ray-head, run by
# init and ray-worker) and by the KubeRay RayService and the orders-init Job in k8s/.
#   docker build -t ray-orders:0.1.0 .
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu
FROM ${RAY_IMAGE}

# The base image runs as the unprivileged user `ray` with its own Python in ~/anaconda3.
WORKDIR /home/ray/app
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. The locked dependencies, before any source: this layer is rebuilt only when pyproject.toml
#    or requirements.lock change, not on every code edit. Only the runtime dependencies of
#    pyproject.toml, each at the lock's version (-c); the image's own Ray must be the same.
COPY --chown=ray:users pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" >/tmp/deps.txt \
    && pip install -c requirements.lock -r /tmp/deps.txt \
    && python -c "import ray; assert ray.__version__ == '2.60.0', ray.__version__"

# 2. The source (every package of pyproject's [tool.setuptools.packages.find]), then the
#    project itself without touching the dependencies.
COPY --chown=ray:users README.md alembic.ini ./
COPY --chown=ray:users domain/ domain/
COPY --chown=ray:users core/ core/
COPY --chown=ray:users adapters/ adapters/
COPY --chown=ray:users consumers/ consumers/
COPY --chown=ray:users actors/ actors/
COPY --chown=ray:users serve_app/ serve_app/
COPY --chown=ray:users cluster/ cluster/
COPY --chown=ray:users cli/ cli/
COPY --chown=ray:users bench/ bench/
COPY --chown=ray:users migrations/ migrations/
COPY --chown=ray:users docker/ray-head.sh docker/ray-head.sh
RUN pip install --no-deps -c requirements.lock . \
    && python -c "import cluster.app, cli.main"

# 8080 Serve (the API), 8265 dashboard, 6390 GCS (same ports as `make up` and compose; under
# KubeRay the GCS listens on 6379, k8s/services/rayservice.yaml).
EXPOSE 8080 8265 6390
CMD ["bash", "docker/ray-head.sh"]
