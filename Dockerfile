# skyguard on a GPU node: ONNX Runtime's CUDA build on NVIDIA's CUDA runtime image.
# Build: docker build -t skyguard .   Run: docker run --gpus all -p 3000:3000 -v $PWD/models:/models skyguard
# Bundles are not baked in: mount a BentoML store holding skyguard-<task> models at /models/bentoml
# (make one with `make serve` or `skyguard train ...` on any machine).
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    BENTOML_HOME=/models/bentoml \
    BENTOML_DO_NOT_TRACK=true \
    SKYGUARD_PROVIDER=auto

# Python 3.11 (the project's version) from the deadsnakes archive
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY core core
COPY training training
COPY monitors monitors
COPY service service

# torch serves only the white-box canaries: its CPU build is enough. onnxruntime-gpu (the `gpu`
# extra) replaces the CPU onnxruntime of the lock file; both install the same module, never both.
RUN python3.11 -m venv /venv \
 && /venv/bin/pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && grep -v '^onnxruntime==' requirements.lock > /tmp/constraints.txt \
 && /venv/bin/pip install --no-cache-dir -c /tmp/constraints.txt '.[gpu]'

EXPOSE 3000
VOLUME /models
HEALTHCHECK --interval=30s --timeout=5s CMD python3.11 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/readyz')"
CMD ["/venv/bin/bentoml", "serve", "service.service:Skyguard", "--host", "0.0.0.0", "--port", "3000"]
