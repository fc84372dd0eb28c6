"""Where a Zarr node lives and how it is opened: local directories or remote stores (fsspec).

:class:`Location` names a node (a local absolute path or a remote URL); :func:`locate` resolves
what the user gave (paths, ``file://`` URIs, ``https://``, ``s3://``, ...), :func:`open_node`
opens a group or array there (metadata only) with caredask errors, through zarr's
``LocalStore`` or ``FsspecStore`` (``storage_options`` go to the filesystem).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr
import zarr.storage
from zarr.abc.store import Store

from ..errors import CaredaskError, FormatError, InputError, SourceNotFoundError
from .discover import file_uri_to_path, is_uri

__all__ = ["Location", "Node", "all_local", "child_node", "locate", "open_node"]

Node = zarr.Array | zarr.Group


@dataclass(frozen=True)
class Location:
    """Where a zarr node lives: a local directory or a remote URL (no trailing slash)."""

    where: str
    local: bool

    def child(self, key: str) -> Location:
        sep = os.sep if self.local else "/"
        return Location(f"{self.where}{sep}{key}" if key else self.where, self.local)

    @property
    def display(self) -> str:
        """The path from the store directory (first ``*.zarr`` component) on."""
        parts = self.where.replace(os.sep, "/").split("/")
        for i, p in enumerate(parts):
            if p.lower().endswith(".zarr"):
                return "/".join(parts[i:])
        return parts[-1]


def locate(source: str | os.PathLike[str]) -> Location:
    """Resolve a path or URI; a local one must exist."""
    text = os.fspath(source)
    if is_uri(text) and not text.lower().startswith("file://"):
        return Location(text.rstrip("/"), local=False)
    path = Path(file_uri_to_path(text) if is_uri(text) else text).expanduser()
    if not path.exists():
        kind = "URI" if is_uri(text) else "path"
        raise SourceNotFoundError(
            f"{text}: no zarr store, group or array at this {kind} ({path.absolute()} does not "
            f"exist); check the {kind} (relative paths are taken from {os.getcwd()})"
        )
    return Location(str(path.absolute()).rstrip(os.sep) or os.sep, local=True)


def open_node(loc: Location, storage_options: dict[str, Any] | None) -> Node:
    """The group or array at ``loc`` (metadata only), with caredask errors."""
    try:
        store: Store
        if loc.local:
            store = zarr.storage.LocalStore(loc.where, read_only=True)
        else:
            store = zarr.storage.FsspecStore.from_url(
                loc.where, storage_options=storage_options, read_only=True
            )
        return zarr.open(store=store, mode="r")
    except CaredaskError:
        raise
    except ImportError as e:
        raise InputError(
            f"{loc.where}: reading this kind of URI needs a package that is not installed "
            f"({e}); install it (e.g. pip install 'caredask[remote]', s3fs or gcsfs)"
        ) from e
    except (FileNotFoundError, zarr.errors.NodeNotFoundError) as e:
        hint = "local zarr metadata (zarr.json, .zgroup or .zarray)" if loc.local else "it"
        raise SourceNotFoundError(
            f"{loc.where}: no zarr group or array here (found no {hint}); check the path/URI "
            "points at a zarr store, group or array"
        ) from e
    except Exception as e:
        raise SourceNotFoundError(
            f"{loc.where}: cannot read the zarr store ({type(e).__name__}: {e}); check the "
            "URI, that the server or bucket is reachable, and storage_options (credentials)"
        ) from e


def child_node(group: zarr.Group, key: str, loc: Location) -> Node:
    try:
        return group[key]
    except KeyError as e:
        raise FormatError(
            f"{loc.child(key).where}: the metadata names {key!r} but there is no such node; "
            "the store is incomplete"
        ) from e


def all_local(source: Any) -> bool:
    """No remote URI (``file://`` counts as local) in a source or list of sources."""
    items = source if isinstance(source, list | tuple) else [source]
    texts = [os.fspath(s) for s in items if isinstance(s, str | os.PathLike)]
    return not any(is_uri(t) and not t.lower().startswith("file://") for t in texts)
