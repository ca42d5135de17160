# Reelscope API and worker image. Models are baked in: Whisper tiny.en and the PP-OCR
# ONNX models come with their wheels, and the OCR model folders are prepared below, so
# a container never downloads a model at run time.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    REELSCOPE_DATA_DIR=/data \
    REELSCOPE_MODEL_CACHE_DIR=/opt/reelscope/models \
    REELSCOPE_LOG_FORMAT=json

# libgomp: OpenMP for CTranslate2 and onnxruntime. tini: signals reach the process.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tini \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY models ./models
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY reelscope ./reelscope

# The same OpenCV arrangement as `make install` (see the Makefile): paddlex needs the
# contrib build's metadata, and the headless build's cv2/ is laid over it.
RUN pip install . \
    && pip install --no-deps --force-reinstall opencv-contrib-python==4.10.0.84 \
    && pip install --no-deps --force-reinstall opencv-python-headless==4.10.0.84 \
    && python -c "from reelscope.settings import Settings; from worker import Models; Models(Settings()).preload()" \
    && useradd --system --uid 10001 --home-dir /data reelscope \
    && mkdir -p /data \
    && chown -R reelscope /data /opt/reelscope

USER reelscope
VOLUME ["/data"]
EXPOSE 8000 9464
ENTRYPOINT ["tini", "--"]
CMD ["reelscope", "api"]
