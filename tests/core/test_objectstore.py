"""Records in an object store (``assessment.objectstore``): ``assess --records s3://bucket/records.parquet``.

A real S3 wire protocol on loopback: moto's server (a test double of the hosted API, over a real socket)
holds the files; pyarrow.fs reads them and DuckDB counts them. The count tables, the SQL and the decision
from ``s3://`` are those from the same local file; every way a URI can fail is an error naming it (exit 2).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from changeover.assessment import objectstore, pushdown
from changeover.cli import run

from .test_pushdown import DECIDE as PUSHDOWN_DECIDE
from .test_pushdown import SPEC, assert_same, simulated_rows, write_jsonl, write_parquet

pytestmark = pytest.mark.filterwarnings("ignore::changeover.assessment.ConvergenceWarning")  # short fits, on purpose

BUCKET = "records"
FAST = ["--draws", "100", "--warmup", "100", "--chains", "2", "--no-store-labels", "--next", "10"]
# the pushdown tests' decision spec, with a score dimension whose failed calls are excluded
DECIDE = (
    PUSHDOWN_DECIDE.split("  style:")[0]
    + "  fluency: {signal: score, bins: 3, margin: 0.05, required: false, errors: exclude}\n"
)
_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # no credentials from an instance's metadata endpoint (it is not there)
}


@dataclass
class Moto:
    fs: Any  # pyarrow's S3FileSystem on the server
    endpoint: str  # host:port


@pytest.fixture(scope="module")
def s3() -> Iterator[Moto]:
    """moto's S3 server on a free loopback port, with the bucket."""
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer  # the test extra has it: missing is an error, never a skip

    saved = {k: os.environ.get(k) for k in (*_ENV, "AWS_ENDPOINT_URL", "AWS_MAX_ATTEMPTS")}
    os.environ.update(_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    try:
        yield Moto(fs, f"{host}:{port}")
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def upload(s3: Moto, local: Path, key: str) -> str:
    """Put ``local`` at ``s3://BUCKET/key`` byte for byte; the URI with the endpoint in its query."""
    with s3.fs.open_output_stream(f"{BUCKET}/{key}", compression=None) as out:  # no gzip of a .gz name
        out.write(local.read_bytes())
    return f"s3://{BUCKET}/{key}?endpoint_override={s3.endpoint}&scheme=http"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return simulated_rows(600, seed=4)


@pytest.fixture
def spec(tmp_path: Path) -> Any:
    from changeover.config import load_spec

    p = tmp_path / "migration.yaml"
    p.write_text(SPEC)
    return load_spec(p)


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    p = tmp_path / "decide.yaml"
    p.write_text(DECIDE)
    return p


@pytest.fixture
def endpoint(s3: Moto, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server as the standard environment names it (AWS_ENDPOINT_URL): URIs without a query."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3.endpoint}")
    return str(s3.endpoint)


def _same_sql(remote: list[str], local: list[str], uri: str, path: Path) -> None:
    """The same statements, the file's name aside."""
    assert [s.replace(uri.split("?")[0], str(path)) for s in remote] == local


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".jsonl.gz"])
def test_tables_from_s3_equal_the_local_files(
    s3: Moto, spec: Any, rows: list[dict[str, Any]], tmp_path: Path, suffix: str
) -> None:
    if suffix == ".parquet":
        path = write_parquet(tmp_path / "records.parquet", rows)
    else:
        path = write_jsonl(tmp_path / "records.jsonl", rows)
        if suffix == ".jsonl.gz":
            import gzip

            path = tmp_path / "records.jsonl.gz"
            path.write_bytes(gzip.compress((tmp_path / "records.jsonl").read_bytes()))
    uri = upload(s3, path, f"run-1/records{suffix}")
    verdicts = {("q00003", "new", "correctness"): [("alice", 1)]}
    remote = pushdown.from_file(spec, uri, next_count=20, verdicts=verdicts)
    local = pushdown.from_file(spec, path, next_count=20, verdicts=verdicts)
    assert_same(remote.prepared, local.prepared)
    assert remote.rows == local.rows == len(rows)
    assert remote.merged == local.merged == 1
    assert remote.records == local.records == []  # the labelled rows' verdicts were counted in DuckDB

    def file_verdicts(statements: list[str]) -> str:
        return next(s for s in statements if "verdicts of the file's labelled rows" in s).rsplit("--", 1)[1]

    assert (
        file_verdicts(remote.statements) == file_verdicts(local.statements) != " 0 verdicts of the file's labelled rows"
    )
    reader = "read_parquet" if suffix == ".parquet" else "read_ndjson_objects"
    assert any(f"{reader}('s3://{BUCKET}/run-1/records{suffix}')" in s for s in remote.statements)
    assert not any("endpoint_override" in s for s in remote.statements)  # the query is pyarrow's, not the SQL's
    _same_sql(remote.statements, local.statements, uri, path)


def test_cli_assess_from_s3_decides_as_from_the_local_file(
    endpoint: str, s3: Moto, spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    path = write_parquet(tmp_path / "records.parquet", rows)
    upload(s3, path, "cli/records.parquet")
    uri = f"s3://{BUCKET}/cli/records.parquet"
    # auto: a URI goes to DuckDB however small (the Python engine reads local files only)
    rc = run(["assess", "--spec", str(spec_path), "--records", uri, "--json", str(tmp_path / "a.json"), *FAST])
    out = capsys.readouterr().out
    assert rc in (0, 1, 3)
    responses = sum(1 for r in rows if r["model"] in ("old", "new"))
    assert f"count tables by a GROUP BY over {responses:,} responses (--engine duckdb)" in out
    args = ["--json", str(tmp_path / "b.json"), "--engine", "python", *FAST]
    assert run(["assess", "--spec", str(spec_path), "--records", str(path), *args]) == rc
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def _fails(capsys: Any, argv: list[str]) -> str:
    """Run the CLI; it must exit 2 with one error line (no traceback); the error's text."""
    rc = run(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.startswith("error:"), err
    return " ".join(err.split())


def _assess(spec_path: Path, records: str, *args: str) -> list[str]:
    return ["assess", "--spec", str(spec_path), "--records", records, *FAST, *args]


def test_no_such_key_or_bucket(endpoint: str, spec_path: Path, capsys: Any) -> None:
    err = _fails(capsys, _assess(spec_path, f"s3://{BUCKET}/nothing/here.parquet"))
    assert f"s3://{BUCKET}/nothing/here.parquet: bucket '{BUCKET}' has no object 'nothing/here.parquet'" in err
    err = _fails(capsys, _assess(spec_path, "s3://no-such-bucket/records.jsonl"))
    assert "s3://no-such-bucket/records.jsonl: no such bucket 'no-such-bucket'" in err and "AWS_ENDPOINT_URL" in err


def test_a_prefix_is_not_an_object(
    endpoint: str, s3: Moto, spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    upload(s3, write_jsonl(tmp_path / "r.jsonl", rows[:10]), "folder/part-0.jsonl")
    err = _fails(capsys, _assess(spec_path, f"s3://{BUCKET}/folder.jsonl"))
    assert "has no object 'folder.jsonl'" in err
    with pytest.raises(objectstore.NoSuchObject, match="is a folder"):
        objectstore.ObjectPath(f"s3://{BUCKET}/folder").exists()


def test_access_denied(
    endpoint: str, s3: Moto, spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import moto.settings

    upload(s3, write_jsonl(tmp_path / "r.jsonl", rows), "denied/records.jsonl")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks the keys from now on
    err = _fails(capsys, _assess(spec_path, f"s3://{BUCKET}/denied/records.jsonl"))
    assert f"s3://{BUCKET}/denied/records.jsonl: access denied by the object store" in err
    assert "AWS_ACCESS_KEY_ID" in err


def test_unreachable_endpoint(spec_path: Path, capsys: Any, monkeypatch: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for k, v in _ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # the AWS tools' setting: no retries, a fast answer
    uri = f"s3://{BUCKET}/records.parquet?endpoint_override=127.0.0.1:{port}&scheme=http"
    err = _fails(capsys, _assess(spec_path, uri))
    assert f"s3://{BUCKET}/records.parquet: the object store does not answer" in err
    assert "endpoint_override=HOST:PORT" in err and f"127.0.0.1:{port}" in err


def test_pyarrow_without_s3(spec_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow._s3fs", None)  # as a pyarrow built without S3: no such module
    err = _fails(capsys, _assess(spec_path, f"s3://{BUCKET}/records.parquet"))
    assert "was built without s3:// support" in err and "pip install" in err


def test_unknown_scheme_and_query(spec_path: Path, capsys: Any) -> None:
    err = _fails(capsys, _assess(spec_path, "ftp://host/records.jsonl"))
    assert "ftp://host/records.jsonl: pyarrow.fs does not open ftp:// URIs" in err
    err = _fails(capsys, _assess(spec_path, f"s3://{BUCKET}/r.jsonl?endpoint=x"))
    assert f"s3://{BUCKET}/r.jsonl: Unexpected query parameter" in err


def test_python_engine_report_and_pick_refuse_a_uri(spec_path: Path, tmp_path: Path, capsys: Any) -> None:
    uri = f"s3://{BUCKET}/records.parquet"
    want = f"{uri}: object-store paths are read by the DuckDB engine (--engine duckdb)"
    assert want in _fails(capsys, _assess(spec_path, uri, "--engine", "python"))
    assert want in _fails(capsys, _assess(spec_path, uri, "--markdown", str(tmp_path / "s.md")))
    assert want in _fails(capsys, ["report", "--spec", str(spec_path), "--records", uri, "--no-store-labels"])
    assert want in _fails(capsys, ["pick", "--spec", str(spec_path), "--records", uri, "--no-store-labels"])
    assert not (tmp_path / "s.md").exists()


def test_what_duckdb_cannot_count_is_an_error_for_a_uri(
    endpoint: str, s3: Moto, spec_path: Path, rows: list[dict[str, Any]], tmp_path: Path, capsys: Any
) -> None:
    upload(s3, write_jsonl(tmp_path / "r.jsonl", [*rows, dict(rows[0], sample=1)]), "samples/r.jsonl")
    err = _fails(capsys, _assess(spec_path, f"s3://{BUCKET}/samples/r.jsonl", "--engine", "duckdb"))
    assert "repeated samples" in err and "read by the DuckDB engine only" in err and "aws s3 cp" in err


def test_paths_and_uris() -> None:
    assert objectstore.records_path("file:///tmp/r.jsonl") == Path("/tmp/r.jsonl")
    assert objectstore.records_path("C:/data/r.jsonl") == Path("C:/data/r.jsonl")
    got = objectstore.records_path("gs://bucket/a/b/records.jsonl.gz?endpoint_override=h:1")
    assert isinstance(got, objectstore.ObjectPath)
    assert (str(got), got.name, got.suffixes, got.scheme) == (
        "gs://bucket/a/b/records.jsonl.gz",
        "records.jsonl.gz",
        [".jsonl", ".gz"],
        "gs",
    )
    assert not objectstore.is_uri(Path("s3://folded"))  # a Path has lost its '//': not a URI any more


def test_an_object_that_fails_while_duckdb_reads_it(
    s3: Moto, endpoint: str, spec_path: Path, tmp_path: Path, capsys: Any
) -> None:
    """The checks pass (the object exists), the read fails (not Parquet inside): an error naming the URI."""
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(b"PAR1" + b"\0" * 64)
    uri = upload(s3, bad, "cut.parquet").split("?")[0]
    assert run(["assess", "--spec", str(spec_path), "--records", uri, *FAST]) == 2
    err = capsys.readouterr().err
    assert uri in err and "could not be read" in err and "Traceback" not in err


def test_keys_in_a_uri_never_reach_a_message() -> None:
    """pyarrow's own words quote the URI it could not parse; the message quotes it without its query."""
    with pytest.raises(objectstore.ObjectStoreError) as caught:
        objectstore.ObjectPath("s3://bucket/a b.jsonl?access_key=AKIAXX&secret_key=TOPSECRET").exists()
    assert "s3://bucket/a b.jsonl" in str(caught.value)
    assert "TOPSECRET" not in str(caught.value) and "AKIAXX" not in str(caught.value)
    path = objectstore.ObjectPath("s3://b/k.jsonl?secret_key=S3CRET&region=eu")
    assert path.redacted("failed: secret_key=S3CRET&region=eu at s3://b/k.jsonl?secret_key=S3CRET&region=eu") == (
        "failed: <query> at s3://b/k.jsonl"
    )
    assert "S3CRET" not in path.redacted("token session_token=abc secret_key=S3CRET")
