# The platform's image: Ray 2.60.0 on Python 3.11 (CPU) plus the project, installed with the
# exact versions of requirements.lock. Used by docker-compose.yml (ray-head, ray-worker) and by
# the KubeRay RayService and the orders-init Job in k8s/.
#   docker build -t ray-orders:0.1.0 .
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu
FROM ${RAY_IMAGE}

# The base image runs as the unprivileged user `ray` with its own Python in ~/anaconda3.
WORKDIR /home/ray/app
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --chown=ray:users pyproject.toml requirements.lock README.md alembic.ini ./
COPY --chown=ray:users domain/ domain/
COPY --chown=ray:users core/ core/
COPY --chown=ray:users actors/ actors/
COPY --chown=ray:users consumers/ consumers/
COPY --chown=ray:users serve_app/ serve_app/
COPY --chown=ray:users cli/ cli/
COPY --chown=ray:users bench/ bench/
COPY --chown=ray:users migrations/ migrations/
COPY --chown=ray:users docker/ docker/

# -c pins every dependency (Ray included) to the lock; the image's own Ray must be the same.
RUN pip install -c requirements.lock . \
    && python -c "import ray, serve_app.api; assert ray.__version__ == '2.60.0', ray.__version__"

# 8080 Serve (the API), 8265 dashboard, 6390 GCS (same ports as `make up`).
EXPOSE 8080 8265 6390
CMD ["bash", "docker/ray-head.sh"]
