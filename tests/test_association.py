"""Walk association (vid2reid/association.py): walks grouped into people without labels.

Oracles: generated walks whose people are known by construction (the association never
sees them), hand-counted pair tables, and synthetic bodies whose bone lengths are set.
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from benches import people_bench
from vid2reid.association import (associate, body_proportions, compare_with_subjects,
                                  pair_lengths, rigid_pairs, walk_pair_stats, window_walk_frames)
from vid2reid.errors import ConfigError
from vid2reid.labels import pseudo_labels
from vid2reid.synthetic import random_body, walk


def _people(counts: list[int], dim: int = 32, spread: float = 0.15, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Walk vectors of known people: a random centre per person, small noise per walk."""
    rng = np.random.default_rng(seed)
    who = np.repeat(np.arange(len(counts)), counts)
    centres = rng.normal(size=(len(counts), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[who] + spread * rng.normal(size=(len(who), dim)) / np.sqrt(dim)
    perm = rng.permutation(len(who))  # people interleaved, not in blocks
    return x[perm], who[perm]


@pytest.mark.parametrize("counts", [[2] * 40, [50] * 6, [1] * 5 + [2] * 10 + [5] * 6 + [30] * 3],
                         ids=["2-each", "50-each", "mixed"])
def test_finds_the_people_whatever_their_number_of_walks(counts):
    x, who = _people(counts)
    a = associate(x, None)
    assert adjusted_rand_score(who, a.labels) == pytest.approx(1.0)
    assert a.people == len(counts)
    assert a.singletons == sum(c == 1 for c in counts)


def test_gait_in_the_features_does_not_merge_people_the_bones_separate():
    """Features that follow gait (three gait types shared by everyone, far apart) and bones
    that follow the person: the grouping follows the bones, where features alone group gaits."""
    rng = np.random.default_rng(3)
    who = np.repeat(np.arange(20), 6)
    gait = np.tile(np.arange(3), 40)
    feats = 3 * rng.normal(size=(3, 16))[gait] + 0.3 * rng.normal(size=(120, 16))
    body = rng.normal(size=(20, 15))[who] + 0.25 * rng.normal(size=(120, 15))
    both = associate(feats, body)
    assert adjusted_rand_score(who, both.labels) > 0.9
    alone = associate(feats, None)
    assert adjusted_rand_score(who, alone.labels) < 0.2
    assert adjusted_rand_score(gait, alone.labels) > adjusted_rand_score(who, alone.labels)


def test_features_that_agree_with_the_bones_help():
    """Where the bones are noisy and the features follow the person, both cues together
    group better than the bones alone."""
    rng = np.random.default_rng(4)
    who = np.repeat(np.arange(30), 3)
    feats = rng.normal(size=(30, 16))[who] + 0.4 * rng.normal(size=(90, 16))
    body = rng.normal(size=(30, 15))[who] + 0.8 * rng.normal(size=(90, 15))
    both = adjusted_rand_score(who, associate(feats, body).labels)
    assert both > 0.8
    assert both > adjusted_rand_score(who, associate(None, body).labels) + 0.2


def test_forced_number_of_people_and_bad_requests():
    x, _ = _people([3] * 10)
    for n in (1, 4, 10, 17, 30):
        assert associate(x, None, people=n).people == n
    with pytest.raises(ConfigError, match="--people must lie in 1..30"):
        associate(x, None, people=31)
    with pytest.raises(ConfigError, match="needs sequence features or body proportions"):
        associate(None, None)


def test_confidence_is_high_for_clear_groups_and_low_for_a_walk_between_two():
    x, who = _people([5] * 8, spread=0.1)
    a = associate(x, None, with_confidence=True)
    assert a.confidence.min() > 0.6
    assert a.people_range[0] <= a.people <= a.people_range[1]
    # a walk halfway between two people who lie close together (three spreads apart)
    y = x.copy()
    y[who == 1] = y[who == 1] - y[who == 1].mean(axis=0) + y[who == 0].mean(axis=0) + 0.06
    mid = (y[who == 0].mean(axis=0) + y[who == 1].mean(axis=0)) / 2
    b = associate(np.vstack([y, mid]), None, with_confidence=True)
    assert b.confidence[-1] < 0.7
    assert b.confidence[-1] < np.median(b.confidence[:-1]) - 0.2
    assert ((b.confidence >= 0) & (b.confidence <= 1)).all()


def test_body_proportions_pick_rigid_pairs_and_tell_bodies_apart():
    """Synthetic walkers (h36m-17) of set bone lengths: the chosen pairs are a tree over all
    17 joints, more rigid than the rest (length spread measured here frame by frame), never
    the two ankles (their distance is the stride), and another walk of the same body is
    the nearest by the proportions."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(0)
    bodies = [random_body(rng) for _ in range(6)]
    walks, who = [], []
    for p, b in enumerate(bodies):
        for _ in range(3):
            walks.append(walk(b, 80, rng, noise=0.003))
            who.append(p)
    who = np.array(who)
    med, cv = walk_pair_stats(walks)
    i, j = np.triu_indices(17, k=1)
    chosen = rigid_pairs(cv, med, 17)
    assert len(chosen) == 16
    tree = coo_matrix((np.ones(16), (i[chosen], j[chosen])), shape=(17, 17))
    assert connected_components(tree, directed=False)[0] == 1
    assert (3, 6) not in {(int(i[k]), int(j[k])) for k in chosen}
    spread = np.median([[np.linalg.norm(w[:, a] - w[:, b], axis=1).std()
                         / np.linalg.norm(w[:, a] - w[:, b], axis=1).mean() for a, b in zip(i, j)]
                        for w in walks], axis=0)
    rest = np.setdiff1d(np.arange(len(i)), chosen)
    assert spread[chosen].max() < np.median(spread[rest])
    z = body_proportions(walks)
    assert z.shape == (18, 16)
    d = np.linalg.norm(z[:, None] - z[None], axis=2) + np.eye(18) * 1e9
    assert (who[d.argmin(axis=1)] == who).mean() >= 0.9
    assert np.allclose(pair_lengths(walks[0][:1])[0, 0],
                       np.linalg.norm(walks[0][0, 0] - walks[0][0, 1]), atol=1e-5)


def test_people_pseudo_labels_never_split_a_walk():
    """Every window of a walk gets its walk's label; body proportions come from the windows."""
    rng = np.random.default_rng(1)
    bodies = [random_body(rng) for _ in range(5)]
    x_walks = []
    for p, b in enumerate(bodies):
        for _ in range(4):
            w = walk(b, 60, rng, noise=0.003)
            x_walks.append(w)
    windows = np.concatenate([np.stack([w[s:s + 6] for s in range(0, 54, 3)]) for w in x_walks])
    walk_of = np.repeat(np.arange(len(x_walks)), 18)
    feats = torch.from_numpy(rng.normal(size=(len(windows), 8)).astype(np.float32))

    class Cfg:
        pseudo_labels, walk_warmup = "people", 1

    assert len(set(pseudo_labels([feats], walk_of, Cfg, epoch=0, windows=windows)[0])) == 20
    lab = pseudo_labels([feats, feats], walk_of, Cfg, epoch=1, windows=windows)
    for view in lab:
        for w in range(20):
            assert len(set(view[walk_of == w])) == 1
    assert len(window_walk_frames(windows, walk_of, per_walk=5)) == 20
    assert window_walk_frames(windows, walk_of, per_walk=5)[0].shape == (30, 17, 3)


def test_unsure_walks_train_as_their_own_class():
    """Training's people labels: a walk whose confidence is below one half becomes a class
    of its own (a fresh number), sure walks keep their group; a walk is never split."""
    from vid2reid.labels import confident_labels

    lab = confident_labels(np.array([0, 0, 1, 1, 1, 2]), np.array([0.9, 0.4, 0.8, 0.99, 0.1, 1.0]))
    assert list(lab[[0, 2, 3, 5]]) == [0, 1, 1, 2]
    assert lab[1] != lab[4] and min(lab[1], lab[4]) > 2
    assert list(confident_labels(np.array([3, 3]), np.array([0.5, 0.7]))) == [3, 3]


def test_views_agree_before_walks_share_a_class():
    """Training's people labels: two walks share a class only where every masked view's
    grouping joins them; one view alone cannot merge."""
    from vid2reid.labels import agreement

    lab = agreement([np.array([0, 0, 1, 1, 2]), np.array([5, 5, 5, 6, 6])])
    assert lab[0] == lab[1] and len(set(lab)) == 4
    assert len({lab[2], lab[3], lab[4]}) == 3


def test_compare_with_subjects_counts_pairs():
    # groups {a a b} {b} {c c}: pairs in a group: 3 + 0 + 1 = 4, of them one subject: 1 + 1 = 2;
    # pairs of one subject: a 1, b 1, c 1 = 3, of them together: 2
    e = compare_with_subjects(np.array([0, 0, 0, 1, 2, 2]), ["a", "a", "b", "b", "c", "c"])
    assert e["precision"] == pytest.approx(2 / 4)
    assert e["recall"] == pytest.approx(2 / 3)
    assert e["subjects"] == 3
    assert compare_with_subjects(np.array([5, 5, 7]), ["x", "x", "y"])["ari"] == 1.0


# ---------------------------------------------------------------------------
# Generated stores of the two regimes (benchmarks/people.py), people known by construction

def _regime(name: str, **change):
    import dataclasses

    b = people_bench()
    reg = next(r for r in b.regimes(0) if r.name == name)
    return b, dataclasses.replace(reg, **change)


def test_many_walks_per_person_over_six_gaits_are_one_person_each():
    """Set-2 regime (10 people x 60 walks over 6 gaits, 25 joints), from the mean pose and
    the bones: the features split every person by gait, the bones join the gaits back, so
    the number of people found is within 0.8x-1.25x of the truth and each group one person."""
    b, reg = _regime("set2")
    walks, who, _, _ = b.generate(reg, seed=0)
    a = associate(b.raw_features(walks), body_proportions(walks), with_confidence=True)
    e = compare_with_subjects(a.labels, [str(w) for w in who])
    assert 8 <= a.people <= 12
    assert e["ari"] > 0.8 and e["precision"] > 0.9
    assert a.people_range[0] <= a.people <= a.people_range[1]
    features_alone = associate(b.raw_features(walks), None)
    assert features_alone.people > 2 * a.people  # what the bones undo: people split by gait


@pytest.mark.parametrize("seed", [1, 2])
def test_a_walk_left_alone_joins_the_person_the_model_prefers(seed):
    """Set-2 regime, other draws: the bones' tree leaves a few walks of a person alone; each
    joins its nearest group where the fitted model finds it likelier there than alone, so the
    count stays within 0.8x-1.25x of the 10 people."""
    b, reg = _regime("set2")
    walks, who, _, _ = b.generate(reg, seed=seed)
    a = associate(b.raw_features(walks), body_proportions(walks), with_confidence=True)
    assert 8 <= a.people <= 12
    assert compare_with_subjects(a.labels, [str(w) for w in who])["ari"] > 0.9
    alone = np.bincount(a.labels)[a.labels] == 1
    assert not (alone & (a.confidence < 0.5)).any()  # no walk left alone that would rather join


def test_three_walks_per_person_are_found_despite_altered_gaits():
    """Set-1 regime (27 people x 3 walks, two of them altered gaits): the count within
    0.8x-1.25x, more than half of the pairs put together one person."""
    b, reg = _regime("set1")
    walks, who, _, _ = b.generate(reg, seed=0)
    a = associate(b.raw_features(walks), body_proportions(walks), with_confidence=True)
    e = compare_with_subjects(a.labels, [str(w) for w in who])
    assert 22 <= a.people <= 33
    assert e["ari"] > 0.6
    assert e["precision"] > 0.5 and e["recall"] > 0.6


def test_bones_split_groups_that_features_learned_wrong():
    """Set-1 regime where the features follow wrong groups (people joined at random in
    threes, as after training on wrong pseudo-labels): the bones split those groups; on the
    set-2 regime (60 walks a person) the same step does not split a person."""
    b, reg = _regime("set1")
    walks, who, _, _ = b.generate(reg, seed=1)
    feats = b.learned_wrong_features(who, 9, seed=1)  # 27 people in 9 groups
    subjects = [str(w) for w in who]
    features_alone = compare_with_subjects(associate(feats, None).labels, subjects)
    found = associate(feats, body_proportions(walks))
    both = compare_with_subjects(found.labels, subjects)
    assert features_alone["ari"] < 0.4  # the features' wrong groups
    assert both["ari"] > 0.8 and both["precision"] > 2 * features_alone["precision"]
    assert 22 <= found.people <= 33

    b, reg = _regime("set2")
    walks, who, _, _ = b.generate(reg, seed=0)
    a = associate(b.learned_wrong_features(who, 3, seed=0), body_proportions(walks))
    assert 8 <= a.people <= 12
    assert compare_with_subjects(a.labels, [str(w) for w in who])["ari"] > 0.9


def test_pieces_of_one_person_are_joined_and_of_two_kept_apart():
    """Six pieces of walks (bone vectors), three from each of two people far apart: the
    greedy join ends with the two people, each whole."""
    from vid2reid.association import _join_pieces

    rng = np.random.default_rng(0)
    means = np.array([[2.0] * 5, [-2.0] * 5])
    piece = np.repeat(np.arange(6), 4)  # pieces 0-2 person 0, pieces 3-5 person 1
    x = means[piece // 3] + 0.3 * rng.normal(size=(24, 5))
    m = np.bincount(piece).astype(float)
    total, squares = np.zeros((6, 5)), np.zeros((6, 5))
    np.add.at(total, piece, x)
    np.add.at(squares, piece, x ** 2)
    part = _join_pieces(m, total, squares, np.full(5, 0.09), np.full(5, 4.0))
    assert len(set(part[:3])) == 1 and len(set(part[3:])) == 1 and part[0] != part[3]


def test_weak_bones_do_not_overrule_features_that_follow_the_person():
    """KGBD-like regime (164 people x 1-3 normal walks, noisy bones): the bones' own tree
    joins people it cannot tell apart; the features' grouping is kept."""
    b, reg = _regime("kgbd-like")
    walks, who, _, _ = b.generate(reg, seed=0)
    a = associate(b.raw_features(walks), body_proportions(walks))
    e = compare_with_subjects(a.labels, [str(w) for w in who])
    bones_alone = associate(None, body_proportions(walks))
    assert 0.8 * 164 <= a.people <= 1.25 * 164
    assert e["ari"] > 0.7
    assert bones_alone.people < 0.8 * 164  # what the features prevent


def test_bones_are_found_by_their_absolute_spread():
    """Generated Kinect walks (set-1 regime): the rigid pairs are the layout's own bones for
    the most part (pairs across two bones vary less relative to their length, not in metres)."""
    from vid2reid.layouts import layout_bones

    b, reg = _regime("set1", walks=(3,) * 8)
    walks, _, _, layout = b.generate(reg, seed=1)
    med, cv = walk_pair_stats(walks)
    i, j = np.triu_indices(20, k=1)
    chosen = {(int(i[k]), int(j[k])) for k in rigid_pairs(cv * med, med, 20)}
    assert len(chosen & set(layout_bones(layout))) >= 10


def test_crp_prior_stops_the_bones_alone_carving_people_with_many_walks():
    """An experiment, not the default (``prior="crp"``): on the bones alone, later rounds
    cut each of set2's people into tight pieces (many groups for 10); with the
    Chinese-restaurant prior over groupings the cut keeps them whole. The prior is 0 for one
    group and for every walk alone, below 0 between."""
    from vid2reid.association import _crp_log_prior

    assert _crp_log_prior(np.zeros(6, int)) == 0.0 == _crp_log_prior(np.arange(6))
    assert _crp_log_prior(np.array([0, 0, 0, 1, 1, 2])) < 0.0
    b, reg = _regime("set2")
    walks, who, _, _ = b.generate(reg, seed=0)
    body = body_proportions(walks)
    assert associate(None, body).people > 30
    a = associate(None, body, prior="crp")
    assert 8 <= a.people <= 12
    assert compare_with_subjects(a.labels, [str(w) for w in who])["ari"] > 0.9
    with pytest.raises(ConfigError, match="unknown prior"):
        associate(None, body, prior="dirichlet")
