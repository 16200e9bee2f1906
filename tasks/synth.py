"""`tasks synth`: deterministic WarCov-like drops.

Posts come from a latent topic vector z (dim LATENT). Topic k is on when a noisy score
w_k.z + (u_k.z)(v_k.z) passes the quantile that gives its prevalence (about 1% to 18%,
log-spaced, like WarCov's hashtag clusters). The product term makes topics non-linear in the
embeddings, as hashtag clusters are, so a linear baseline cannot be optimal. Labels share "theme" directions, so they co-occur. The text
embedding is a noisy linear view of z; the image view is weaker and noisier, as in WarCov.
Generation runs in chunks with per-chunk RNG streams: memory is flat in the row count and
the output does not depend on the chunk size.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from tasks import contract as c

LATENT, THEMES = 48, 8
WARCOV_ROWS = 70_252
CHUNK = 8192
# Readable names for the synthetic topics, in the spirit of WarCov's hashtag clusters (war in
# Ukraine, COVID-19, politics): an analyst reads "refugees", not "topic_17". Index k keeps
# the prevalence rank it had before (about 1% for the first to 18% for the last).
TOPIC_NAMES = (
    "ceasefire_talks", "prisoner_exchange", "grain_corridor", "nuclear_plant", "cyber_attacks",
    "drone_strikes", "mobilisation", "war_crimes", "tank_deliveries", "air_defence",
    "border_crossings", "humanitarian_aid", "refugees", "volunteers", "donations",
    "energy_prices", "fuel_prices", "inflation", "interest_rates", "sanctions",
    "nato_summit", "eu_council", "un_resolutions", "diplomacy", "disinformation",
    "propaganda", "media_freedom", "elections", "parliament", "government",
    "opposition", "protests", "courts", "healthcare", "hospitals",
    "vaccines", "booster_doses", "covid_cases", "lockdown", "masks",
    "remote_school", "remote_work", "long_covid", "travel_rules", "sports",
    "culture", "religion", "weather", "economy", "war_in_ukraine",
)


def topic_names(n: int) -> list[str]:
    return list(TOPIC_NAMES[:n]) if n <= len(TOPIC_NAMES) else c.default_label_names(n)


@dataclasses.dataclass
class World:
    """The fixed generative parameters for one seed."""
    w: np.ndarray          # (LATENT, n_labels) label directions
    u: np.ndarray          # (LATENT, n_labels) interaction directions
    v: np.ndarray
    cut: np.ndarray        # (n_labels,) thresholds giving each label's prevalence
    prevalence: np.ndarray
    a_txt: np.ndarray      # (LATENT, txt_dim)
    a_img: np.ndarray      # (LATENT, img_dim)
    label_noise: float = 0.6
    txt_noise: float = 1.0
    img_noise: float = 1.6
    img_signal: float = 0.5


def make_world(seed: int, n_labels: int = c.WARCOV_N_LABELS, img_dim: int = c.WARCOV_IMG_DIM,
               txt_dim: int = c.WARCOV_TXT_DIM) -> World:
    rng = np.random.default_rng([seed, 0])
    themes = rng.standard_normal((THEMES, LATENT))
    theme_of = rng.integers(0, THEMES, n_labels)
    w = 1.2 * themes[theme_of] + 0.7 * rng.standard_normal((n_labels, LATENT))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    prevalence = rng.permutation(np.geomspace(0.01, 0.18, n_labels))
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).T.astype(np.float32)  # noqa: E731
    world = World(w=w.T.astype(np.float32), u=unit(rng.standard_normal((n_labels, LATENT))),
                  v=unit(rng.standard_normal((n_labels, LATENT))), cut=np.zeros(n_labels), prevalence=prevalence,
                  a_txt=(rng.standard_normal((LATENT, txt_dim)) / np.sqrt(LATENT)).astype(np.float32),
                  a_img=(rng.standard_normal((LATENT, img_dim)) / np.sqrt(LATENT)).astype(np.float32))
    # The cut is each score's (1 - p_k) quantile on a fixed reference sample of the world.
    ref = _scores(world, np.random.default_rng([seed, 2]), 200_000)[1]
    world.cut = np.array([np.quantile(ref[:, k], 1 - p) for k, p in enumerate(prevalence)], dtype=np.float32)
    return world


def _scores(world: World, rng: np.random.Generator, n: int):
    z = rng.standard_normal((n, LATENT)).astype(np.float32)
    score = z @ world.w + 1.2 * (z @ world.u) * (z @ world.v) \
        + world.label_noise * rng.standard_normal((n, world.w.shape[1])).astype(np.float32)
    return z, score


def _embed(world: World, rng: np.random.Generator, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(z)
    txt = z @ world.a_txt + world.txt_noise * rng.standard_normal((n, world.a_txt.shape[1])).astype(np.float32)
    img = world.img_signal * (z @ world.a_img) + world.img_noise * rng.standard_normal(
        (n, world.a_img.shape[1])).astype(np.float32)
    return img.astype(np.float32), txt.astype(np.float32)


def sample(world: World, rng: np.random.Generator, n: int,
           boost: dict[int, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n posts -> (img, txt, labels).

    `boost={k: share}` plants an event: that share of the posts is replaced by posts about
    topic k, drawn from the same world (rejection sampling on label k). Topics that co-occur
    with k rise with it only as much as they co-occur in the world.
    """
    z, score = _scores(world, rng, n)
    labels = (score > world.cut).astype(np.uint8)
    for k, share in (boost or {}).items():
        m = int(round(share * n))
        if m == 0:
            continue
        picked_z, picked_y = [], []
        while sum(len(x) for x in picked_z) < m:
            zz, ss = _scores(world, rng, 8192)
            yy = (ss > world.cut).astype(np.uint8)
            hit = yy[:, k] == 1
            picked_z.append(zz[hit]); picked_y.append(yy[hit])
        rows = rng.choice(n, m, replace=False)
        z[rows] = np.concatenate(picked_z)[:m]
        labels[rows] = np.concatenate(picked_y)[:m]
    img, txt = _embed(world, rng, z)
    return img, txt, labels


def write_labeled(out: Path, drop_id: str, rows: int = WARCOV_ROWS, seed: int = 42, id_start: int = 0,
                  n_labels: int = c.WARCOV_N_LABELS, img_dim: int = c.WARCOV_IMG_DIM,
                  txt_dim: int = c.WARCOV_TXT_DIM, world_seed: int | None = None) -> c.Manifest:
    """A labeled training drop. `world_seed` fixes the topics (default: seed); `seed` the posts."""
    world = make_world(seed if world_seed is None else world_seed, n_labels, img_dim, txt_dim)
    w = c.DropWriter(out, drop_id, rows, "labeled", img_dim, txt_dim, topic_names(n_labels),
                     source=f"synth:seed={seed},world={world_seed if world_seed is not None else seed}")
    with w:
        for i, start in enumerate(range(0, rows, CHUNK)):
            n = min(CHUNK, rows - start)
            img, txt, labels = sample(world, np.random.default_rng([seed, 1, i]), n)
            ids = np.array([f"p{id_start + start + j:09d}" for j in range(n)])
            w.write(img, txt, ids, labels)
    return w.manifest


def write_scoring_day(out: Path, day: dt.date, rows: int, seed: int = 42, world_seed: int = 42,
                      boost: dict[int, float] | None = None, img_shift: float = 0.0,
                      txt_shift: float = 0.0) -> c.Manifest:
    """An unlabeled scoring drop for one day, with timestamps. `boost` plants topic spikes;
    the shifts plant input drift (added to every embedding coordinate)."""
    world = make_world(world_seed)
    day_seed = int(day.strftime("%Y%m%d"))
    t0 = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
    w = c.DropWriter(out, day.isoformat(), rows, "unlabeled", with_timestamps=True,
                     source=f"synth-day:seed={seed},world={world_seed}")
    with w:
        for i, start in enumerate(range(0, rows, CHUNK)):
            n = min(CHUNK, rows - start)
            rng = np.random.default_rng([seed, day_seed, i])
            img, txt, _ = sample(world, rng, n, boost)
            ids = np.array([f"{day_seed}-{start + j:08d}" for j in range(n)])
            ts = t0 + np.sort(rng.integers(0, 86400, n)).astype(np.int64)
            w.write(img + np.float32(img_shift), txt + np.float32(txt_shift), ids, timestamps=ts)
    return w.manifest
