"""Output files of prediction: OME-TIFF or OME-Zarr, written under a temporary name, then renamed.

An error while writing leaves nothing at the output path, and its temporary file is removed
(only a kill leaves a hidden ``.NAME.<host>-<pid>-<random>.partial``, never mistaken for an output);
an existing output is replaced only when asked to.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from im2im_core.axes import SPATIAL
from im2im_core.data.layouts import _stem
from im2im_core.errors import DataError

OutputFormat = Literal["ome-tiff", "ome-zarr"]
EXTENSIONS: dict[str, str] = {"ome-tiff": ".ome.tiff", "ome-zarr": ".ome.zarr"}


def output_path(input_path: str | Path, output_dir: str | Path, suffix: str = "_pred",
                output_format: OutputFormat = "ome-tiff") -> Path:
    """The file a prediction of ``input_path`` is written to: ``output_dir/<stem><suffix><ext>``."""
    if output_format not in EXTENSIONS:
        raise DataError(f"output format {output_format!r} is not one of {', '.join(EXTENSIONS)}")
    return Path(output_dir) / f"{_stem(Path(input_path))}{suffix}{EXTENSIONS[output_format]}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


#: ``errno`` values of a write that fails because of the file system (full, read-only, no permission).
STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


def _partial_name(path: Path) -> Path:
    """The temporary name of ``path`` for this process: ``.NAME.<host>-<pid>-<random>.partial``."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())
    return path.with_name(f".{path.name}.{host}-{os.getpid()}-{secrets.token_hex(4)}.partial")


def remove_stale_partials(path: Path) -> int:
    """Remove the temporary outputs of ``path`` left by processes of this machine that no longer run (killed).

    Only partials named with this host whose process id is not running are removed, so the
    live temporary outputs of other processes, here or on other nodes, are never touched.
    Returns how many were removed.
    """
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())
    removed = 0
    for partial in path.parent.glob(f".{glob.escape(path.name)}.{glob.escape(host)}-*.partial"):
        pid = partial.name[len(path.name) + len(host) + 3:].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            _remove(partial)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _link_or_replace(partial: Path, path: Path) -> None:
    """A file without overwrite: a hard link fails if another writer got there first (``EEXIST``);
    where the file system has no hard links, a rename does (and the last writer wins whole).
    """
    try:
        os.link(partial, path)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            os.replace(partial, path)
        else:
            raise


def _publish(partial: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``partial`` to ``path``; refuse, keeping what is there, if another writer got there first."""
    raced = f"output {path} was written by another process at the same time; it was kept and this result discarded"
    try:
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise DataError(raced)
            try:
                _remove(path)
            except FileNotFoundError:  # another writer is replacing it too: the rename below settles who wins
                pass
        if partial.is_dir() or overwrite:
            os.replace(partial, path)  # atomic: a file replaces a file; a folder only an absent or empty one
        else:
            _link_or_replace(partial, path)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise DataError(raced) from None
        raise


@contextmanager
def atomic_output(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds.

    The temporary name is unique to the process (``.NAME.<host>-<pid>-<random>.partial``) and removed
    on every error path, so two writers of one output never share a file: one wins whole, and
    the other, finding the output there, refuses with a :class:`DataError`.

    Raises
    ------
    DataError
        If ``path`` exists and ``overwrite`` is false (checked before anything is written and
        again before the rename), if its folder is not a folder, or if writing fails because
        the file system is full, read-only or not writable (naming ``path``).
    """
    if path.exists() and not overwrite:
        raise DataError(f"output exists: {path}; pass overwrite (--prediction.overwrite true) to replace it")
    if path.parent.exists() and not path.parent.is_dir():
        raise DataError(f"output folder {path.parent} is a file; expected a folder")
    partial = _partial_name(path)
    try:
        yield partial
        _publish(partial, path, overwrite)
    except OSError as exc:
        if exc.errno in STORAGE_ERRORS:
            raise DataError(f"cannot write {path}: {exc.strerror or exc} (nothing was left there)") from None
        raise
    finally:
        if partial.exists() or partial.is_symlink():
            _remove(partial)


def _pixel_sizes(dims: str, pixel_sizes: dict[str, float | None]) -> tuple[float | None, float | None, float | None]:
    return tuple(pixel_sizes.get(axis) if axis in dims else None for axis in SPATIAL)  # type: ignore[return-value]


def save_ome_tiff(array: np.ndarray, path: Path, dims: str, pixel_sizes: dict[str, float | None]) -> None:
    """Save ``array`` with axes ``dims`` (e.g. ``"CZYX"``) and physical pixel sizes as OME-TIFF."""
    from bioio_base.types import PhysicalPixelSizes
    from bioio_ome_tiff.writers import OmeTiffWriter

    OmeTiffWriter.save(array, str(path), dim_order=dims,
                       physical_pixel_sizes=PhysicalPixelSizes(*_pixel_sizes(dims, pixel_sizes)))


def write_ome_tiff(array: np.ndarray, path: Path, dims: str, pixel_sizes: dict[str, float | None],
                   overwrite: bool = True) -> None:
    """:func:`save_ome_tiff` through a temporary file and a rename: a crash leaves no file at ``path``."""
    with atomic_output(path, overwrite) as partial:
        save_ome_tiff(array, partial, dims, pixel_sizes)


def default_chunks(shape: Sequence[int], dims: str) -> list[int]:
    """One timepoint and channel, 64x32x256 pixels in ZYX (256x256 in YX), cut to the shape.

    Thin in Y for 3D, so that streamed prediction (which sweeps large volumes along Y) writes
    whole chunks while holding few finished rows back.
    """
    limits = {"T": 1, "C": 1, "Z": 64, "Y": 32 if "Z" in dims else 256, "X": 256}
    return [min(int(n), limits[a]) for n, a in zip(shape, dims)]


class ZarrOutput:
    """An OME-Zarr image (one resolution level) filled region by region.

    Parameters
    ----------
    store : Path
        Folder of the zarr store (normally the temporary path of :func:`atomic_output`).
    shape : sequence of int
        Shape of the image, axes ``dims``.
    dims : str
        Axis letters, a subsequence of ``"TCZYX"`` ending in ``"YX"``.
    dtype : numpy dtype
        Type of the stored values.
    pixel_sizes : dict
        Physical size of a pixel along ``"Z"``, ``"Y"``, ``"X"`` (micrometres), where known.
    chunks : sequence of int, optional
        Chunk shape; default: :func:`default_chunks`.
    """

    def __init__(self, store: Path, shape: Sequence[int], dims: str, dtype: Any, pixel_sizes: dict[str, float | None],
                 chunks: Sequence[int] | None = None) -> None:
        from bioio_ome_zarr.writers import OMEZarrWriter

        chunk_shape = list(chunks) if chunks is not None else default_chunks(shape, dims)
        scale = [pixel_sizes.get(a) or 1.0 if a in SPATIAL else 1.0 for a in dims]
        self.writer = OMEZarrWriter(str(store), level_shapes=[tuple(shape)], dtype=np.dtype(dtype), chunk_shape=[chunk_shape],
                                    axes_names=[a.lower() for a in dims],
                                    axes_types=["time" if a == "T" else "channel" if a == "C" else "space" for a in dims],
                                    axes_units=["micrometer" if a in SPATIAL else None for a in dims],
                                    physical_pixel_size=scale)
        self.writer.initialize()
        # One resolution level, written with zarr itself: bioio's write_region wraps each block in a
        # dask array (hashing it whole and copying it) to derive lower levels that this store has not.
        # The writer's level arrays are its `datasets` (bioio-ome-zarr 3); without them, its own method.
        levels = getattr(self.writer, "datasets", None)
        self.level0 = levels[0] if levels else None
        self.shape = tuple(shape)

    def write(self, region: tuple[slice, ...], block: np.ndarray) -> None:
        """Store ``block`` at ``region`` (one slice per axis, with explicit bounds)."""
        full = tuple(slice(s.start or 0, n if s.stop is None else s.stop) for s, n in zip(region, self.shape))
        if self.level0 is None:
            self.writer.write_region(block, full)
        else:
            self.level0[full] = block
