"""`tasks import-warcov`: turn the published WarCov files into a contract drop.

Kaggle "xehivs/warcov" ships three parallel files (multimodal_img_noft_pca,
multimodal_txt_noft_pca, multimodal_y_noft) as .npy or .csv with no shared id column. Row i
of each file is post i, so the files must have the same length. The seed silently truncated
all three to the shortest; here a mismatch is an error unless --align truncate is given,
which keeps the first min(N) rows of each and says how many it dropped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tasks import contract as c

log = logging.getLogger(__name__)


def read_matrix(path: Path, id_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D float matrix from .npy (no pickle) or .csv (header line auto-detected)."""
    path = Path(path)
    if path.suffix == ".npy":
        arr = np.asarray(c.load_array(path, mmap=False))
        if arr.ndim != 2:
            raise c.ContractError(f"{path}: expected a 2-D matrix, got shape {arr.shape}")
        return arr, None
    if path.suffix != ".csv":
        raise c.ContractError(f"{path}: expected a .npy or .csv file")
    import pandas as pd
    if not path.is_file():
        raise c.ContractError(f"{path}: missing file")
    first = path.open().readline().strip().split(",")
    has_header = not all(_is_number(x) for x in first if x != "")
    try:
        df = pd.read_csv(path, header=0 if has_header else None)
    except (ValueError, pd.errors.ParserError) as e:
        raise c.ContractError(f"{path}: unreadable CSV ({e})") from None
    ids = None
    if id_column is not None:
        if id_column not in df.columns:
            raise c.ContractError(f"{path}: no column {id_column!r} (have {list(df.columns)[:5]}...)")
        ids = df.pop(id_column).astype(str).to_numpy()
    for col in [col for col in df.columns if str(col).startswith("Unnamed")]:  # pandas index dumps
        df.pop(col)
    try:
        return df.to_numpy(dtype=np.float32), ids
    except ValueError as e:
        raise c.ContractError(f"{path}: non-numeric values ({e})") from None


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def import_warcov(img_path: Path, txt_path: Path, y_path: Path, out: Path, drop_id: str,
                  names_file: Path | None = None, align: str = "strict", id_column: str | None = None) -> c.Manifest:
    img, ids = read_matrix(img_path, id_column)
    txt, _ = read_matrix(txt_path, id_column)
    y, _ = read_matrix(y_path, id_column)
    counts = {str(img_path): len(img), str(txt_path): len(txt), str(y_path): len(y)}
    n = min(counts.values())
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{p}: {k} rows" for p, k in counts.items())
        if align != "truncate":
            raise c.ContractError(f"row counts differ ({detail}); the files have no shared id to join on. "
                                  "Re-export them aligned, or pass --align truncate to keep the first "
                                  f"{n} rows of each (only right if the extra rows are at the end)")
        log.warning("--align truncate: keeping the first %d rows; dropping %s", n,
                    ", ".join(f"{k - n} from {p}" for p, k in counts.items() if k > n))
    img, txt, y = img[:n], txt[:n], y[:n]
    if not np.isin(y, (0, 1)).all():
        raise c.ContractError(f"{y_path}: labels must be 0/1")
    names = c.default_label_names(y.shape[1])
    if names_file is not None:
        names = [s.strip() for s in Path(names_file).read_text().splitlines() if s.strip()]
        if len(names) != y.shape[1]:
            raise c.ContractError(f"{names_file}: {len(names)} names for {y.shape[1]} label columns")
    ids = ids[:n] if ids is not None else np.array([f"warcov-{i:06d}" for i in range(n)])
    return c.write_drop(out, drop_id, img, txt, ids, labels=y.astype(np.uint8), label_names=names,
                        source=f"warcov:{Path(img_path).name},{Path(txt_path).name},{Path(y_path).name}")
