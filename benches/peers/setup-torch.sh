#!/usr/bin/env bash
# Installs PyTorch 2.15 (used on the CPU only) into a virtual environment for
# benches/peers/torch_attention.py.
#   bash benches/peers/setup-torch.sh [VENV_DIR]     (default /tmp/torch-peer; ~4.5 GB)
# The Linux wheel imports only when its CUDA libraries are present, so they
# are installed too.
set -euo pipefail
venv=${1:-/tmp/torch-peer}
python3 -m venv "$venv"
. "$venv/bin/activate"
pip install -q --no-deps torch==2.15.0
pip install -q numpy filelock typing-extensions sympy networkx jinja2 fsspec \
  "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.2.2" \
  nvidia-cudnn-cu13==9.26.0.51 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvshmem-cu13==3.7.2 2>&1 \
  | grep -v "requires\|incompatible" || true
python -c "import torch; print('torch', torch.__version__, 'cpu capability', torch.backends.cpu.get_cpu_capability())"
echo "activate with: . $venv/bin/activate"
