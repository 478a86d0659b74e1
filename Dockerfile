# Sightline, CPU image for x86_64 (and any architecture Debian 12 and the onnxruntime wheel
# cover). Multi-stage: the build stage has the Rust toolchain and the GStreamer development
# packages; the runtime stage has only runtime libraries, the binary, the ONNX Runtime library,
# the shipped models, the sample clip and config, and runs as a non-root user.
#
#   docker build -t sightline .                        # anywhere with a registry
#   scripts/image                                      # this project's machines: buildah, no
#                                                      # registry, base image from debootstrap
#
# Build arguments:
#   BUILDER       image of the build stage (Rust 1.95 on Debian 12)
#   RUNTIME_BASE  image of the runtime stage (Debian 12); scripts/image passes a local image
#                 made with debootstrap when no registry is reachable
# Targets: `runtime` (the default, last stage: builds from source) and `prebuilt` (takes
# `target/release/sightline` and `.ort/` from the build context instead of the build stage;
# what scripts/image uses, since no Rust toolchain image can be pulled here).
# Variants: deploy/docker/Dockerfile.cuda (CUDA x86_64), deploy/docker/Dockerfile.jetson
# (arm64 Jetson).

ARG BUILDER=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_BASE=docker.io/library/debian:bookworm-slim

# --- build: the Rust toolchain, GStreamer dev packages, ONNX Runtime from its PyPI wheel ------
FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
RUN SIGHTLINE_SETUP_BUILD_ONLY=1 SIGHTLINE_SKIP_PY=1 SIGHTLINE_SKIP_TEST_VENV=1 scripts/setup \
 && cargo build --release --locked -p sightline \
 && mkdir -p /out && cp target/release/sightline /out/ && cp -a .ort /out/.ort

# --- runtime base: runtime libraries only, a non-root user --------------------------------------
FROM ${RUNTIME_BASE} AS runtime-base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 libgstreamer-plugins-bad1.0-0 \
      libgstrtspserver-1.0-0 \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp \
      ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --system --uid 10001 --home-dir /var/lib/sightline --create-home \
      --shell /usr/sbin/nologin sightline
WORKDIR /opt/sightline
COPY models/ /opt/sightline/models/
COPY samples/ /opt/sightline/samples/
COPY configs/ /opt/sightline/configs/
# The API listens on 8080 (`serve`), workers serve /metrics, /health and /ready on 9464
# (`worker --metrics-addr 0.0.0.0:9464`; set SIGHTLINE_HEALTH_PORT=9464 for them), RTSP on 8554.
ENV ORT_DYLIB_PATH=/opt/sightline/.ort/libonnxruntime.so \
    SIGHTLINE_DATA_DIR=/var/lib/sightline \
    SIGHTLINE_RTSP__BIND=0.0.0.0 \
    SIGHTLINE_HEALTH_PORT=8080 \
    GST_REGISTRY=/tmp/gstreamer-registry.bin
VOLUME /var/lib/sightline
EXPOSE 8554 8080 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${SIGHTLINE_HEALTH_PORT}/health" >/dev/null || exit 1
# SIGTERM drains: runs are released within [engine].shutdown_timeout_s, HTTP requests get 30 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/sightline/sightline"]
CMD ["serve"]

# --- prebuilt: the binary and ORT library from the build context (scripts/image) --------------
FROM runtime-base AS prebuilt
COPY target/release/sightline /opt/sightline/sightline
COPY .ort/ /opt/sightline/.ort/
USER sightline

# --- runtime (default): the binary built by the build stage --------------------------------------
FROM runtime-base AS runtime
COPY --from=build /out/sightline /opt/sightline/sightline
COPY --from=build /out/.ort/ /opt/sightline/.ort/
USER sightline
