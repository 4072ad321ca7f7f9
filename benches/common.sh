# Sourced by the bench drivers: the repository root, the target directory, and the tools a
# bench needs that the test dependencies do not install.
bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_target=${CARGO_TARGET_DIR:-$bench_root/target}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

# cyclictest (Debian's rt-tests), the reference every latency figure is divided by.
need_cyclictest() {
    command -v cyclictest >/dev/null && return
    echo "installing rt-tests (cyclictest)" >&2
    local sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq rt-tests >/dev/null
}

# socket.io-client for the Editor-like debugger clients (scripts/test-deps installs it).
need_node_clients() {
    [ -d "$bench_root/target/node-deps/node_modules/socket.io-client" ] || "$bench_root/scripts/test-deps"
}
