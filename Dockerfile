# Sightline: build with the project's own set-up script, run on a slim Debian 12.
# (Written and reviewed, not built here: the development machines have no Docker engine.)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN SIGHTLINE_SKIP_PY=1 scripts/setup && cargo build --release --locked -p sightline

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
      gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp libgstrtspserver-1.0-0 \
      ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/sightline
COPY --from=build /src/target/release/sightline /opt/sightline/sightline
COPY --from=build /src/.ort/ /opt/sightline/.ort/
COPY models/ /opt/sightline/models/
COPY samples/ /opt/sightline/samples/
COPY configs/ /opt/sightline/configs/
ENV ORT_DYLIB_PATH=/opt/sightline/.ort/libonnxruntime.so \
    SIGHTLINE_DATA_DIR=/var/lib/sightline
VOLUME /var/lib/sightline
EXPOSE 8554 8080 9464
ENTRYPOINT ["/opt/sightline/sightline"]
CMD ["serve"]
