#!/bin/sh
#
# Ansible managed
#
# Starts vLLM in the foreground as vllm.service would: same environment,
# same command line (exec-start.txt). Pass VLLM_API_KEY in the caller's environment if wanted.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
set -a
. "$here/environment"
set +a
exec <venv>/bin/python -m vllm.entrypoints.openai.api_server --config /var/tmp/classroom-hw/results/render/tp1/vllm.yaml "$@"
