# Sourced by docker/build-images.sh. wheelhouse <requirements> [python version] -> prints a
# folder of wheels for it, cached by its content under $CACHE (or $WHEELHOUSE). pip inside
# `docker build` would meet the proxy; `pip wheel` also turns sdist-only dependencies into wheels.
# Without a version: wheels for the images' Python, Debian 12's 3.11. Built by the host's
# $PYTHON (default python3) when it is 3.11, else inside the base image $BASE_IMAGE (host network
# for the package index; PIP_INDEX_URL / PIP_EXTRA_INDEX_URL are passed on, e.g. PyTorch's CPU
# index). With a version (the TensorRT image's 3.10): binary wheels for that CPython on
# manylinux x86_64, downloaded by the host's pip, whatever Python the host has.
# PIP_EXTRA_CA: a CA bundle for a TLS-intercepting proxy.
wheelhouse() {
  local req=$1 py=${2:-} hash dir host=${PYTHON:-python3}
  hash=$( (grep -v '^#' "$req"; [ -z "$py" ] || echo "python $py") | sha256sum | cut -c1-12)
  dir=${WHEELHOUSE:-$CACHE/wheelhouse-$hash}
  if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$dir"
    if [ -z "$py" ] && ! "$host" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
      echo "wheelhouse: $host is not Python 3.11 (the images'): building the wheels in $BASE_IMAGE" >&2
      # the host's trust store (it has any TLS proxy's CA the host trusts), unless told otherwise
      local ca=${PIP_EXTRA_CA:-/etc/ssl/certs/ca-certificates.crt}
      [ -f "$ca" ] || ca=
      docker run --rm --network host --user "$(id -u):$(id -g)" -e HOME=/tmp \
        -e PIP_INDEX_URL -e PIP_EXTRA_INDEX_URL -e PIP_DISABLE_PIP_VERSION_CHECK=1 \
        -v "$(realpath "$dir"):/wheels" -v "$(realpath "$req"):/requirements.txt:ro" \
        ${ca:+-v "$(realpath "$ca"):/extra-ca.crt:ro"} "$BASE_IMAGE" \
        sh -c "python3 -m venv /tmp/pip && /tmp/pip/bin/pip wheel -q ${ca:+--cert /extra-ca.crt} \
               -w /wheels -r /requirements.txt" >&2 || { echo "wheelhouse: building $req's wheels failed" >&2; return 1; }
    else
      local how=(wheel -w "$dir")
      [ -z "$py" ] || how=(download -d "$dir" --only-binary=:all: --implementation cp --python-version "$py"
                           --abi "cp${py/./}" --abi abi3 --abi none --platform manylinux_2_28_x86_64
                           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
      # (this machine's pip config names an unused extra index: one harmless warning per package)
      "$host" -m pip "${how[@]}" -q ${PIP_EXTRA_CA:+--cert "$PIP_EXTRA_CA"} -r "$req" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) \
        || { echo "wheelhouse: $req: pip failed" >&2; return 1; }  # (a command substitution does not inherit set -e)
    fi
    touch "$dir/.complete"  # only after a complete build: a failed one is redone
  fi
  echo "$dir"
}
