"""The Numenta Anomaly Benchmark (NAB) as a library: its corpus, its labels, and its own scorer.

NAB (github.com/numenta/NAB, MIT) is not vendored: point NAB_DIR at a checkout (default
~/.cache/social-tone/nab), or let `python bench/nab_corpus.py --checkout` (`make nab`) make one at
NAB_COMMIT, the commit every figure was measured on, from a git mirror folder
(SOCIAL_TONE_GIT_MIRRORS, <owner>+<name>/repo) or else GitHub. Scoring uses
NAB's own `nab.sweeper.Sweeper` from that checkout (pure Python), so each per-file sweep, the
threshold optimisation over a set of files and the normalisation against the null detector
are NAB's arithmetic:

    normalised = 100 * (score - null score) / (windows * tpWeight - null score)

over whatever set of files is scored (the whole corpus reproduces NAB's published table:
tests/test_detect.py checks two detectors).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PROBATION = 0.15  # NAB's default: the first 15% of a file (at most 750 rows) is not scored
TRAIN_CATEGORIES = ("realTweets", "artificialNoAnomaly", "artificialWithAnomaly")  # tuned on
HELD_OUT = ("realAWSCloudwatch", "realAdExchange", "realKnownCause", "realTraffic")  # never tuned on


NAB_REPO = "numenta/NAB"
NAB_COMMIT = "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140"  # the checkout measured (2024-12-03, MIT licence)


def nab_path() -> Path:
    """Where the checkout is looked for: NAB_DIR, else ~/.cache/social-tone/nab."""
    return Path(os.environ.get("NAB_DIR") or Path.home() / ".cache/social-tone/nab")


def has_corpus(d: Path) -> bool:
    return (d / "labels" / "combined_windows.json").is_file()


def nab_dir() -> Path:
    d = nab_path()
    if not has_corpus(d):
        raise SystemExit(f"NAB not found at {d}: `make nab` makes a checkout there, or set NAB_DIR")
    return d


def checkout(dest: Path | None = None, commit: str = NAB_COMMIT) -> Path:
    """A checkout of NAB at `commit` at `dest` (default nab_path()), unless one is there: cloned
    from the mirror folder when it has NAB, else from GitHub, into a temporary sibling, then renamed."""
    from tasks import env  # the settings registry (bench/ runs with the repository on sys.path)
    dest = Path(dest or nab_path())
    if has_corpus(dest):
        return dest
    mirrors = env.get("SOCIAL_TONE_GIT_MIRRORS")
    mirror = Path(mirrors) / NAB_REPO.replace("/", "+") / "repo" if mirrors else None
    source = str(mirror) if mirror and mirror.is_dir() else f"https://github.com/{NAB_REPO}"
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "advice.detachedHead=false"]
    subprocess.run([*git, "clone", "-q", "--no-checkout", source, str(tmp)], check=True)
    subprocess.run([*git, "-C", str(tmp), "checkout", "-q", commit], check=True)
    if not has_corpus(tmp):
        shutil.rmtree(tmp)
        raise SystemExit(f"{source} at {commit[:7]}: no labels/combined_windows.json")
    tmp.rename(dest)
    return dest


@lru_cache(maxsize=None)
def sweeper_class(root: str):
    sys.path.insert(0, root)
    from nab.sweeper import Sweeper  # NAB's own scorer
    return Sweeper


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.strip())


class Corpus:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or nab_dir())
        raw = json.loads((self.root / "labels" / "combined_windows.json").read_text())
        self.windows = {f: [(parse_time(a), parse_time(b)) for a, b in w] for f, w in raw.items()}
        self.labels = {f: [parse_time(t) for t in ts]
                       for f, ts in json.loads((self.root / "labels" / "combined_labels.json").read_text()).items()}
        self.profiles = json.loads((self.root / "config" / "profiles.json").read_text())
        self.thresholds = json.loads((self.root / "config" / "thresholds.json").read_text())
        self.published = json.loads((self.root / "results" / "final_results.json").read_text())
        self._data: dict[str, tuple[list[dt.datetime], np.ndarray]] = {}

    def files(self, categories=None) -> list[str]:
        return sorted(f for f in self.windows if categories is None or f.split("/")[0] in categories)

    def series(self, f: str) -> tuple[list[dt.datetime], np.ndarray]:
        if f not in self._data:
            with open(self.root / "data" / f, newline="") as fh:
                rows = list(csv.reader(fh))[1:]
            self._data[f] = ([parse_time(r[0]) for r in rows], np.array([float(r[1]) for r in rows]))
        return self._data[f]

    def detectors(self) -> list[str]:
        return sorted(p.name for p in (self.root / "results").iterdir() if p.is_dir())

    def published_scores(self, detector: str, f: str) -> np.ndarray:
        cat, name = f.split("/")
        with open(self.root / "results" / detector / cat / f"{detector}_{name}", newline="") as fh:
            rows = csv.reader(fh)
            col = next(rows).index("anomaly_score")
            return np.array([float(r[col]) for r in rows])

    def sweep(self, scores: dict[str, np.ndarray], profile: str) -> list:
        """NAB's per-row sweep scores of every file in `scores`, ready for threshold scoring."""
        sweeper = sweeper_class(str(self.root))(PROBATION, self.profiles[profile]["CostMatrix"])
        rows = []
        for f, s in scores.items():
            stamps, _ = self.series(f)
            rows += sweeper.calcSweepScore(stamps, [float(x) for x in s], self.windows[f], f)
        return rows

    def raw_score(self, scores: dict[str, np.ndarray], profile: str, threshold: float | None = None):
        """(score, threshold): at `threshold`, or at the best threshold over these files."""
        sweeper = sweeper_class(str(self.root))(PROBATION, self.profiles[profile]["CostMatrix"])
        by_threshold = sweeper.calcScoreByThreshold(self.sweep(scores, profile))
        if threshold is None:
            best = max(by_threshold, key=lambda r: r.score)
            return best.score, best.threshold
        # NAB's scoreDataSet: the last row whose threshold is still >= the given one
        match = by_threshold[0]
        for row in by_threshold:
            if row.threshold < threshold:
                break
            match = row
        return match.score, threshold

    def normalise(self, raw: float, files: list[str], profile: str, null_raw: float) -> float:
        perfect = sum(len(self.windows[f]) for f in files) * self.profiles[profile]["CostMatrix"]["tpWeight"]
        return 100 * (raw - null_raw) / (perfect - null_raw)

    def null_raw(self, files: list[str], profile: str) -> float:
        return self.raw_score({f: np.full(len(self.series(f)[1]), 0.5) for f in files}, profile)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description="NAB's corpus for the spike-alert benchmark and tests")
    ap.add_argument("--checkout", action="store_true", help=f"make a checkout at {NAB_COMMIT[:7]} unless one is there")
    ap.add_argument("--dir", type=Path, default=None, help="where (default: NAB_DIR, else ~/.cache/social-tone/nab)")
    args = ap.parse_args()
    d = checkout(args.dir) if args.checkout else (args.dir or nab_dir())
    print(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
