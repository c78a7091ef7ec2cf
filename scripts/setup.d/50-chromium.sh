# Sourced by scripts/test: install Debian's chromium (apt) and the Python
# `playwright` package into .venv, for the browser tests (report, labelling app).
# Playwright never downloads a browser here: tests launch it with
# executable_path=$CHANGEOVER_CHROMIUM. Idempotent; installs need root.
_chromium_bin=/usr/bin/chromium
if [ ! -x "$_chromium_bin" ]; then
  if [ "$(id -u)" = 0 ]; then
    # `apt-get update` once: only when chromium is not installable from the current lists.
    if ! apt-cache show chromium >/dev/null 2>&1; then
      apt-get update -qq >/dev/null
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null; then
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
    fi
  else
    echo "chromium is not installed and we are not root; browser tests will fail under CI" >&2
  fi
fi
if ! .venv/bin/python -c "import playwright" >/dev/null 2>&1; then
  # Only the Python driver; its bundled browsers are never downloaded (`playwright install` is not run).
  .venv/bin/python -m pip install -q playwright
fi
if [ -x "$_chromium_bin" ]; then
  export CHANGEOVER_CHROMIUM="$_chromium_bin"
fi
