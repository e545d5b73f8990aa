# syntax=docker/dockerfile:1
# The sockmesh image: meshd, meshcp and meshctl on Debian 12, what charts/sockmesh runs
# (docs/install.md "The image"). Every build step is one of the project's own scripts, the same
# ones README.md and CI run, so the image holds what the test suite tested.
#   docker build -t sockmesh/sockmesh:0.1.0 .
# The build stage reads the build host's /sys/kernel/btf/vmlinux for vmlinux.h (CO-RE: the
# programs still load on every kernel of docs/kernels.md).
ARG DEBIAN=debian:12

FROM ${DEBIAN} AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh && scripts/build.sh release && scripts/install.sh --prefix /usr --root /out

FROM ${DEBIAN}-slim AS runtime
COPY scripts/install-runtime-deps.sh /usr/local/sbin/sockmesh-install-runtime-deps
RUN /usr/local/sbin/sockmesh-install-runtime-deps --clean-apt-lists
COPY --from=build /out/ /
LABEL org.opencontainers.image.title="sockmesh" \
      org.opencontainers.image.description="sockmesh node agent (meshd), control plane (meshcp) and CLI (meshctl)"
# The chart sets the command (meshd or meshcp) and its flags.
CMD ["/usr/bin/meshd", "--help"]
