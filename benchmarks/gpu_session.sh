#!/usr/bin/env bash
# One GPU session, prepared: the gpu-marked tests, then benchmarks.gpu_scale at every published
# shape, each in its own process under its own time limit (590 s in all at most) on an
# H100/H200. Results go to $OUT/gpu_session.md (with each step's log beside it), to be pasted
# into benchmarks/RESULTS.md.
#
#   OUT=/some/folder PYTHON=/path/to/python bash benchmarks/gpu_session.sh
#
# PYTHON: an interpreter with palitune's dependencies and a CUDA build of torch (default:
# .venv/bin/python). Nothing is downloaded: the models are random-init from configs/gpu_scale
# and the data is rendered locally. Exit status: 0 when every step passed and every target
# held, 1 otherwise (the file says which).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-/tmp/palitune-gpu-session}
mkdir -p "$OUT"
REPORT="$OUT/gpu_session.md"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
status=0

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_session: $PY sees no CUDA GPU (torch $("$PY" -c 'import torch; print(torch.__version__)' 2>&1));" \
         "use an interpreter with a CUDA build of torch: PYTHON=... bash $0" | tee "$REPORT" >&2
    exit 1
fi

{
    echo "# GPU session $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```'
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    "$PY" -c 'import torch, transformers, peft, accelerate; print("torch", torch.__version__, "cuda", torch.version.cuda,
"transformers", transformers.__version__, "peft", peft.__version__, "accelerate", accelerate.__version__)'
    "$PY" -c 'import bitsandbytes; print("bitsandbytes", bitsandbytes.__version__)' 2>&1 | tail -1
    echo '```'
    echo
} >"$REPORT"

# step NAME LIMIT_S COMMAND...: run it with its log in $OUT/NAME.log, record pass/fail and seconds.
step() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    local verdict=passed
    [ "$rc" -eq 0 ] || { verdict="FAILED (exit $rc$([ "$rc" -ge 124 ] && echo ", over its ${limit} s limit"))"; status=1; }
    echo "- $name: $verdict in $((SECONDS - start)) s (log: $name.log)" >>"$REPORT"
    echo "gpu_session: $name $verdict in $((SECONDS - start)) s" >&2
}

# The headline shape first, so that a session cut short still has it.
step gpu_scale_3b-448-lora 140 "$PY" -m benchmarks.gpu_scale --shapes 3b-448-lora
step gpu_tests 130 "$PY" -m pytest tests/gpu -m gpu -q -rs -p no:cacheprovider --durations=0
step gpu_scale_3b-224-lora 90 "$PY" -m benchmarks.gpu_scale --shapes 3b-224-lora
step gpu_scale_3b-448-full 110 "$PY" -m benchmarks.gpu_scale --shapes 3b-448-full
step gpu_scale_10b-224-lora 120 "$PY" -m benchmarks.gpu_scale --shapes 10b-224-lora

{
    echo
    echo "## gpu tests"
    echo
    echo '```'
    grep -E "passed|failed|skipped|SKIPPED|FAILED|error" "$OUT/gpu_tests.log" 2>/dev/null | tail -20
    echo '```'
    for shape in 3b-448-lora 3b-224-lora 3b-448-full 10b-224-lora; do
        echo
        echo "## gpu_scale $shape"
        echo
        log="$OUT/gpu_scale_$shape.log"
        [ -f "$log" ] || { echo "(not run)"; continue; }
        # The benchmark's markdown section: from its title to the end of its output.
        sed -n '/^## GPU scale/,$p' "$log" | grep -v '^## GPU scale' || true
        grep -E "out of memory|Error|error:" "$log" | tail -3 || true
    done
} >>"$REPORT"
echo "gpu_session: results in $REPORT" >&2
exit $status
