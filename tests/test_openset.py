"""Open-set verdicts (vid2reid.openset): the threshold comes from the gallery's own distances,
labels play no part, and the verdicts follow it."""

import numpy as np
import pytest

from vid2reid.errors import ConfigError
from vid2reid.openset import decide, fixed_threshold, gallery_threshold, other_person_distances
from vid2reid.run.embed import Walks
from vid2reid.search import rank_gallery


def _walks(features: np.ndarray, subjects: list[str], prefix: str) -> Walks:
    n = len(features)
    z = np.empty((0, features.shape[1]), np.float32)
    return Walks([f"{prefix}{i}" for i in range(n)], [{} for _ in range(n)], subjects,
                 [f"{prefix}h{i}" for i in range(n)], features.astype(np.float32), z,
                 np.empty(0, np.int64), np.empty(0, np.int64))


def test_mutual_neighbour_set_aside_gives_distance_to_somebody_else():
    # two people, two walks each, tight pairs far apart; a fifth walk alone
    x = np.array([[0, 0], [0.1, 0], [5, 0], [5.1, 0], [0, 9]], float)
    d = other_person_distances(x, np.arange(5))
    # walks 0-1 and 2-3 are mutual neighbours: their next walk is the other person (~4.9-5.1);
    # walk 4's nearest (walk 0 or 1, not mutual) is kept: 9 or so
    assert d[:4] == pytest.approx([4.9, 5.0, 4.9, 5.0], abs=0.11)
    assert d[4] == pytest.approx(9.0, abs=0.01)
    # one recording listed twice is never its own neighbour
    d2 = other_person_distances(x, np.array([0, 0, 1, 2, 3]))
    assert d2[0] > 4  # walk 1 is the same recording as walk 0


def test_threshold_ignores_labels_and_separates_absent_people():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 16)) * 3
    gal = np.concatenate([centres[:20] + 0.2 * rng.normal(size=(20, 16)),
                          centres[:20] + 0.2 * rng.normal(size=(20, 16))])
    subjects = [f"p{i % 20}" for i in range(40)]
    g = _walks(gal, subjects, "g")
    t = gallery_threshold(g)
    # the same walks without names give the same threshold: labels play no part
    assert gallery_threshold(_walks(gal, [""] * 40, "g")).value == t.value
    q = _walks(centres + 0.2 * rng.normal(size=(30, 16)), [f"p{i}" for i in range(30)], "q")
    res = decide(rank_gallery(q, g, top=3), t)
    # present people (20) accepted; of the 10 absent ones, about the quantile's share (10%)
    assert all(r.known for r in res[:20]) and sum(r.known for r in res[20:]) <= 2
    assert all(r.score == pytest.approx(r.matches[0].distance / t.value) for r in res)
    assert "no labels" in t.describe()


def test_fixed_threshold_and_too_small_gallery():
    g = _walks(np.eye(2), ["", ""], "g")
    t = gallery_threshold(g)
    assert t.value is None and "--threshold" in t.describe()
    res = decide(rank_gallery(_walks(np.eye(2)[:1] * 0.9, [""], "q"), g, top=1), t)
    assert res[0].known is None and res[0].score is None
    res = decide(rank_gallery(_walks(np.eye(2)[:1] * 0.9, [""], "q"), g, top=1),
                 fixed_threshold(0.5))
    assert res[0].known and res[0].score == pytest.approx(0.2)
    with pytest.raises(ConfigError):
        fixed_threshold(-1)


def test_many_walks_per_person_still_measure_somebody_else():
    """Four walks per person: setting aside a mutual neighbour alone would take a person's own
    third walk for somebody else; the people found (no labels) do not."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(30, 16)) * 3
    gal = np.concatenate([centres[:20] + 0.3 * rng.normal(size=(20, 16)) for _ in range(4)])
    g = _walks(gal, [f"p{i % 20}" for i in range(80)], "g")
    t = gallery_threshold(g)
    own = other_person_distances(gal, np.arange(80))  # the mutual-neighbour rule alone
    assert t.value > 2 * np.quantile(own, 0.1)  # far above the same person's walks
    q = _walks(centres + 0.3 * rng.normal(size=(30, 16)), [f"p{i}" for i in range(30)], "q")
    res = decide(rank_gallery(q, g, top=1), t)
    assert sum(r.known for r in res[:20]) >= 19 and sum(r.known for r in res[20:]) <= 2
    # with people given, each walk's distance is to the nearest walk of another person
    people = np.arange(80) % 20
    d = other_person_distances(gal, np.arange(80), people)
    brute = [min(np.linalg.norm(gal[i] - gal[j]) for j in range(80) if people[j] != people[i])
             for i in range(80)]
    assert np.allclose(d, brute)


def test_a_large_gallery_is_read_through_an_even_sample():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(60, 16)) * 3
    gal = np.concatenate([centres + 0.3 * rng.normal(size=(60, 16)) for _ in range(4)])
    g = _walks(gal, [""] * 240, "g")
    full, sampled = gallery_threshold(g), gallery_threshold(g, most_walks=120)
    assert sampled.value == pytest.approx(full.value, rel=0.25)
