"""Records files in an object store (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``: any URI ``pyarrow.fs`` opens),
read by the DuckDB engine of the pushdown with memory flat in the file size.

DuckDB's own ``httpfs`` extension is downloaded from the internet at first use; machines without
internet (CI, many production networks) cannot load it. Instead the URI is opened with
``pyarrow.fs`` (credentials and endpoint from the standard environment -- ``AWS_ACCESS_KEY_ID``,
``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS`` ... -- or the URI's query,
``?endpoint_override=host:port&scheme=http``) and registered with the DuckDB connection as an fsspec
filesystem (fsspec's wrapper of a pyarrow filesystem). The pushdown's SQL stays as it is for a local
file -- ``read_parquet('s3://bucket/records.parquet')``, ``read_ndjson_objects('s3://...jsonl.gz')`` --
and DuckDB reads through it as it reads a local file: a Parquet file's footer and the column chunks it
needs by ranged reads, a JSONL file in buffers; nothing is copied to disk or held whole.

The checks that can fail (no such bucket or key, access denied, an endpoint that does not answer, a
pyarrow built without the scheme's filesystem) run once, before DuckDB starts, and raise
``ObjectStoreError`` subclasses naming the URI (never its query, which may hold keys) and what to do.
"""

from __future__ import annotations

import importlib
import os
import re
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from changeover.errors import RecordsError

__all__ = [
    "AccessDenied",
    "EndpointUnreachable",
    "NoSuchObject",
    "ObjectPath",
    "ObjectStoreError",
    "ObjectStoreUnsupported",
    "is_uri",
    "pushdown_refused",
    "python_engine_refused",
    "records_path",
]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")  # two letters at least: C:\ is a Windows drive, not a scheme

# the pyarrow module each scheme's filesystem lives in (a pyarrow built without it lacks the module)
_MODULES = {
    "s3": "pyarrow._s3fs",
    "gs": "pyarrow._gcsfs",
    "gcs": "pyarrow._gcsfs",
    "hdfs": "pyarrow._hdfs",
    "viewfs": "pyarrow._hdfs",
    "abfs": "pyarrow._azurefs",
    "abfss": "pyarrow._azurefs",
}
_BUCKETED = ("s3", "gs", "gcs", "abfs", "abfss")  # the path's first part is a bucket (a container)
_ENDPOINT_HINT = "the endpoint (AWS_ENDPOINT_URL, or ?endpoint_override=HOST:PORT&scheme=http after the URI)"


class ObjectStoreError(RecordsError):
    """A records URI cannot be read: the message names the URI and what to do."""


class NoSuchObject(ObjectStoreError):
    """The bucket, or the object in it, does not exist (or the URI names a folder, not an object)."""


class AccessDenied(ObjectStoreError):
    """The object store refused the credentials in use (missing, wrong, or without read permission)."""


class EndpointUnreachable(ObjectStoreError):
    """The object store's endpoint does not answer (wrong host or port, network down)."""


class ObjectStoreUnsupported(ObjectStoreError):
    """This installation cannot read the URI: an unknown scheme, pyarrow without the scheme's filesystem,
    fsspec or DuckDB missing, or a command whose engine reads local files only."""


def is_uri(path: object) -> bool:
    """True for ``scheme://...`` (any scheme but ``file``): a records path for ``pyarrow.fs``."""
    m = _SCHEME.match(str(path)) if isinstance(path, str | ObjectPath) else None
    return m is not None and m.group(1).lower() != "file"


def records_path(value: str | Path | ObjectPath) -> Path | ObjectPath:
    """A records path as the readers take it: an ``ObjectPath`` for a URI (``Path`` would fold its ``//``),
    a ``Path`` for a local file (``file:///x`` too). The CLI's parser of ``--records``."""
    if isinstance(value, Path | ObjectPath):
        return value
    if value.lower().startswith("file://"):
        return Path(value[len("file://") :])
    return ObjectPath(value) if is_uri(value) else Path(value)


def _copy_first(location: str) -> str:
    return f"copy it first (e.g. `aws s3 cp {location} .`, `gcloud storage cp`) and give the local file"


def python_engine_refused(path: object) -> None:
    """Raise ``ObjectStoreUnsupported`` when ``path`` is an object-store URI: the Python engine reads local files."""
    if isinstance(path, ObjectPath) or is_uri(path):
        location = str(path).split("?", 1)[0]  # never the query: it may hold keys
        raise ObjectStoreUnsupported(
            f"{location}: object-store paths are read by the DuckDB engine (--engine duckdb): "
            f"`changeover assess --records {location}`; the Python engine (--engine python, --markdown/--junit, "
            f"report, pick) reads local files only: {_copy_first(location)}"
        )


def pushdown_refused(path: ObjectPath, reason: str) -> ObjectStoreUnsupported:
    """The error for a URI whose tables the DuckDB engine cannot build (``pushdown.Unsupported``'s ``reason``):
    the Python engine, which can, reads local files only."""
    return ObjectStoreUnsupported(
        f"{path}: {reason}; object-store paths are read by the DuckDB engine only (the Python engine reads local "
        f"files): {_copy_first(str(path))}"
    )


def _explain(location: str, text: str) -> ObjectStoreError:
    """An error of pyarrow's (an ``OSError``'s words, the store's own, redacted) as the ``ObjectStoreError`` of
    its cause."""
    detail = " ".join(text.split())
    if re.search(
        r"ACCESS_DENIED|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|\b403\b|PERMISSION_DENIED", text
    ):
        return AccessDenied(
            f"{location}: access denied by the object store ({detail}); check the credentials in use "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE; GOOGLE_APPLICATION_CREDENTIALS; "
            "AZURE_STORAGE_ACCOUNT_KEY) and that they may read this object"
        )
    if "libjvm" in text or "libhdfs" in text:
        return ObjectStoreUnsupported(
            f"{location}: pyarrow cannot load HDFS's client here (a Java runtime and Hadoop's libhdfs are needed: "
            "JAVA_HOME, HADOOP_HOME, CLASSPATH)"
        )
    if re.search(r"NETWORK_CONNECTION|connect|resolve|timed out|Timeout|unreachable", text, re.IGNORECASE):
        return EndpointUnreachable(
            f"{location}: the object store does not answer ({detail}); check {_ENDPOINT_HINT} and the network"
        )
    return ObjectStoreError(f"{location}: cannot be read ({detail})")


class ObjectPath:
    """A records file in an object store, as the pushdown reads it: ``str()`` is the URI without its query
    (what the SQL names), ``name``/``suffix``/``suffixes`` as a ``Path``'s, ``exists()`` the checks."""

    def __init__(self, uri: str) -> None:
        self.uri = uri  # as given: the query (endpoint, scheme, region, maybe keys) is for pyarrow only
        self.location = uri.split("?", 1)[0]
        m = _SCHEME.match(uri)
        self.scheme = m.group(1).lower() if m else ""
        self._pure = PurePosixPath(self.location[len(self.scheme) + 3 :])

    def __str__(self) -> str:
        return self.location

    def __repr__(self) -> str:
        return f"ObjectPath({self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    def name(self) -> str:
        return self._pure.name

    @property
    def suffix(self) -> str:
        return self._pure.suffix

    @property
    def suffixes(self) -> list[str]:
        return self._pure.suffixes

    @cached_property
    def _opened(self) -> tuple[Any, str]:
        """(the pyarrow filesystem, the object's path in it), opened once."""
        try:
            import pyarrow.fs as pafs
        except ImportError:
            raise ObjectStoreUnsupported(f"{self.location}: pyarrow is not installed (pip install pyarrow)") from None
        module = _MODULES.get(self.scheme)
        if module is not None:
            try:
                importlib.import_module(module)
            except ImportError:
                raise ObjectStoreUnsupported(
                    f"{self.location}: this pyarrow ({_pyarrow_version()}) was built without {self.scheme}:// "
                    "support; install pyarrow's wheel from PyPI (pip install --force-reinstall pyarrow), "
                    "which includes S3, GCS, Azure and HDFS"
                ) from None
        try:
            fs, path = pafs.FileSystem.from_uri(self.uri)
        except (OSError, ValueError, NotImplementedError) as exc:  # ArrowIOError, ArrowInvalid, ArrowNotImplemented
            text = self.redacted(str(exc))
            if "Unrecognized filesystem type" in text:
                raise ObjectStoreUnsupported(
                    f"{self.location}: pyarrow.fs does not open {self.scheme}:// URIs; give s3://, gs://, abfs://, "
                    "hdfs:// or a local file"
                ) from None
            if "without" in text and "support" in text:
                raise ObjectStoreUnsupported(
                    f"{self.location}: {text}; install pyarrow's wheel from PyPI, which includes it"
                ) from None
            if isinstance(exc, ValueError):  # ArrowInvalid: a malformed URI or an unknown query key
                raise ObjectStoreError(f"{self.location}: {text} (a URI's query takes pyarrow.fs's options)") from None
            raise _explain(self.location, text) from None
        return _with_retries(fs), str(path)

    def redacted(self, text: str) -> str:
        """``text`` (pyarrow's words) without the URI's query, which may hold keys: the location instead."""
        text = text.replace(self.uri, self.location)
        if "?" in self.uri:
            text = text.replace(self.uri.split("?", 1)[1], "<query>")
        return re.sub(r"((?:secret|access)_key|session_token)=[^&\s'\"]*", r"\1=<redacted>", text)

    def filesystem(self) -> Any:
        """The ``pyarrow.fs.FileSystem`` the object lives in (opened once)."""
        return self._opened[0]

    def exists(self) -> bool:
        """True when the object can be read; otherwise an ``ObjectStoreError`` saying why (never False: a
        missing object is an error of its own, not a reason to try another engine)."""
        import pyarrow.fs as pafs

        fs, path = self._opened
        bucket, _, key = path.partition("/")
        try:
            found = fs.get_file_info(path).type
            no_bucket = (
                found == pafs.FileType.NotFound
                and self.scheme in _BUCKETED
                and fs.get_file_info(bucket).type == pafs.FileType.NotFound
            )
        except OSError as exc:
            raise _explain(self.location, self.redacted(str(exc))) from None
        if found == pafs.FileType.File:
            return True
        if found == pafs.FileType.Directory:
            raise NoSuchObject(
                f"{self.location}: is a folder (a prefix), not an object; give one .jsonl, .jsonl.gz or .parquet object"
            )
        if no_bucket:
            raise NoSuchObject(
                f"{self.location}: no such bucket '{bucket}'; check the bucket's name and {_ENDPOINT_HINT}"
            )
        where = f"bucket '{bucket}' has no object '{key}'" if self.scheme in _BUCKETED else "no such file"
        raise NoSuchObject(f"{self.location}: {where}; check the path (list the folder, e.g. `aws s3 ls`)")

    def size(self) -> int:
        """The object's size in bytes."""
        fs, path = self._opened
        try:
            return int(fs.get_file_info(path).size)
        except OSError as exc:
            raise _explain(self.location, self.redacted(str(exc))) from None

    def register(self, con: Any) -> None:
        """Let the DuckDB connection ``con`` read this URI (``read_parquet('s3://...')``) through pyarrow.fs."""
        try:
            from fsspec.implementations.arrow import ArrowFSWrapper
        except ImportError:
            raise ObjectStoreUnsupported(
                f"{self.location}: fsspec is not installed (pip install 'changeover[scale]')"
            ) from None
        fs, path = self._opened
        location, scheme = self.location, self.scheme

        class _Store(ArrowFSWrapper):  # type: ignore[misc]  # fsspec is untyped
            """This URI's filesystem as DuckDB sees it: the scheme as its protocol, the URI as its path."""

            protocol = scheme
            cachable = False  # fsspec would keep every instance (and its credentials) for the process

            @classmethod
            def _strip_protocol(cls, p: Any) -> Any:
                text = str(p)
                return path if text == location else ArrowFSWrapper._strip_protocol(text)

        con.register_filesystem(_Store(fs))


def _with_retries(fs: Any) -> Any:
    """An S3 filesystem retrying as many times as ``AWS_MAX_ATTEMPTS`` says (the AWS tools' setting; pyarrow's
    own default is 3 attempts, which makes an unreachable endpoint take seconds to report)."""
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not attempts.isdigit() or type(fs).__name__ != "S3FileSystem":
        return fs
    import pyarrow.fs as pafs

    _, (options,) = fs.__reduce__()
    options["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=max(1, int(attempts)))
    return pafs.S3FileSystem(**options)


def _pyarrow_version() -> str:
    try:
        import pyarrow

        return f"pyarrow {pyarrow.__version__}"
    except ImportError:  # pragma: no cover - checked before
        return "pyarrow"
