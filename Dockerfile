# syntax=docker/dockerfile:1
# The Marie node image: `marie` on a minimal non-root base (distroless cc, uid 65532).
#
#   docker build -t marie .                          # build in the Rust image, then run
#   docker build --target prebuilt -t marie .        # the same runtime around a binary
#       built outside Docker (cargo build --release -p marie-node; BINARY=its path)
#   docker build --target runtime-cuda -t marie:cuda .   # GPU pools: libtorch + CUDA
#
# Layout: /usr/local/bin/marie, /etc/marie/cluster.toml (MARIE_CONFIG), working
# directory /usr/share/marie (holds gpu/fixtures/page_classifier.pt, the model path of
# the default cluster.toml), data dir /var/lib/marie, ports 52000 (cluster) and 54322
# (HTTP). The shipped cluster.toml binds 127.0.0.1: `docker run` needs
# -e MARIE_CLUSTER__HOST=0.0.0.0 -e MARIE_HTTP__HOST=0.0.0.0 and a cookie.
#
# The default image is built without libtorch: a pool with a model (gpu-ocr) starts,
# and its classify/infer jobs fail saying to rebuild with the torch feature. The
# runtime-cuda target has libtorch and the CUDA libraries (several GB); on a GPU node
# the NVIDIA container toolkit adds the driver's libcuda. scripts/test-image builds and
# runs the prebuilt target; the build stages need the Rust and Python images.

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
# The full Rust image has g++, which torch-sys compiles its libtorch wrapper with.
ARG RUST_CUDA_BUILD_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

# Everything the runtime stages share: config, model file, data dir, user, entrypoint.
# No RUN here or below: distroless has no shell.
FROM ${RUNTIME_IMAGE} AS base
COPY cluster.toml /etc/marie/cluster.toml
COPY gpu/fixtures/page_classifier.pt /usr/share/marie/gpu/fixtures/page_classifier.pt
COPY --chown=65532:65532 docker/var-lib-marie/ /var/lib/marie/
WORKDIR /usr/share/marie
USER 65532:65532
ENV MARIE_CONFIG=/etc/marie/cluster.toml \
    MARIE_NODE__DATA_DIR=/var/lib/marie
EXPOSE 52000 54322
ENTRYPOINT ["/usr/local/bin/marie"]
CMD ["up"]

# A binary built outside Docker (CI, or a machine without the Rust image).
FROM base AS prebuilt
ARG BINARY=target/release/marie
COPY ${BINARY} /usr/local/bin/marie

# libtorch and the CUDA user-space libraries, from PyPI's torch wheel and its nvidia-*
# wheels; placed where the runtime finds them too (the binary's rpath points here).
FROM ${PYTHON_IMAGE} AS torch
RUN python3 -m pip install --no-cache-dir --root-user-action=ignore \
      --target /opt/marie/python torch==2.11.0

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p marie-node \
 && install -D target/release/marie /out/marie

FROM ${RUST_CUDA_BUILD_IMAGE} AS build-cuda
COPY --from=torch /opt/marie/python /opt/marie/python
ENV LIBTORCH=/opt/marie/python/torch
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target-cuda \
    cargo build --release --locked -p marie-node --features marie-node/torch --target-dir /src/target-cuda \
 && install -D target-cuda/release/marie /out/marie

FROM base AS runtime-cuda
COPY --from=torch /opt/marie/python /opt/marie/python
COPY --from=build-cuda /out/marie /usr/local/bin/marie

# The default target, last: built in the Rust image.
FROM base AS runtime
COPY --from=build /out/marie /usr/local/bin/marie
