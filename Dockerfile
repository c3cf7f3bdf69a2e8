# The image `meshsim export k8s` runs its pods on: the release binary on Debian 12 (the glibc
# it is built against), with `meshsim` as the entrypoint, so a pod's args are a meshsim
# command (`serve …`, `load …`). Build after a release build:
#   cargo build --release && docker build -t meshsim:0.1.0 .
FROM debian:12-slim
COPY target/release/meshsim /usr/local/bin/meshsim
ENTRYPOINT ["/usr/local/bin/meshsim"]
