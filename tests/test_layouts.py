"""Joint layouts and Hi-MPC part maps."""

import json

import numpy as np
import pytest

from vid2reid.errors import ConfigError
from vid2reid.layouts import (COMPONENTS, LAYOUTS, LIMBS, get_part_map, load_part_map,
                              part_positions)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_has_parts_on_valid_joints(name):
    pm = get_part_map(name)
    assert pm.num_joints == LAYOUTS[name].num_joints
    assert len(pm.components) == len(COMPONENTS) == 10
    assert len(pm.limbs) == len(LIMBS) == 5
    for part in pm.components + pm.limbs:
        assert part, "empty part"
        assert all(0 <= j < pm.num_joints for j in part)
        assert len(set(part)) == len(part)
    # every limb contains the components on that side (leg = up + down, arm = up + down)
    comp = dict(zip(COMPONENTS, pm.components))
    limb = dict(zip(LIMBS, pm.limbs))
    for side in ("l", "r"):
        for seg in ("leg", "arm"):
            assert set(comp[f"{side}_{seg}_up"]) | set(comp[f"{side}_{seg}_down"]) \
                == set(limb[f"{side}_{seg}"])
    # left parts use left joints, right parts right joints (by name)
    for cname, idx in comp.items():
        if cname[:2] in ("l_", "r_"):
            assert all(pm.joints[j].startswith(cname[:2]) for j in idx), (cname, idx)


def test_kinect_v1_matches_the_published_map():
    pm = get_part_map("kinect-v1-20")
    assert pm.components == ((12, 13), (14, 15), (16, 17), (18, 19), (0, 1), (2, 3), (4, 5),
                             (6, 7), (8, 9), (10, 11))
    assert pm.limbs == ((12, 13, 14, 15), (16, 17, 18, 19), (0, 1, 2, 3), (4, 5, 6, 7),
                        (8, 9, 10, 11))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_part_position_is_mean_of_its_joints_after_root_relative(name):
    pm = get_part_map(name)
    rng = np.random.default_rng(1)
    joints = rng.normal(size=(4, pm.num_joints, 3)).astype(np.float32) + 5.0
    comp, limb = part_positions(joints, name)
    assert comp.shape == (4, 10, 3) and limb.shape == (4, 5, 3)
    rel = joints - joints[:, pm.root : pm.root + 1]
    for p, idx in enumerate(pm.components):
        np.testing.assert_allclose(comp[:, p], rel[:, list(idx)].mean(axis=1), atol=1e-5)
    for p, idx in enumerate(pm.limbs):
        np.testing.assert_allclose(limb[:, p], rel[:, list(idx)].mean(axis=1), atol=1e-5)
    # a per-frame translation changes nothing (root-relative)
    comp2, _ = part_positions(joints + rng.normal(size=(4, 1, 3)).astype(np.float32), name)
    np.testing.assert_allclose(comp, comp2, atol=1e-4)


def _custom_map() -> dict:
    joints = ["root", "a", "b", "c", "d"]
    comps = {c: [i % 5] for i, c in enumerate(COMPONENTS)}
    comps["torso"] = ["root", "a"]
    limbs = {"l_leg": [0, 1], "r_leg": [2, 3], "torso": ["a", "b", "c"], "l_arm": [4],
             "r_arm": [0, 4]}
    return {"layout": "my-5", "joints": joints, "root": 0, "components": comps, "limbs": limbs}


def test_custom_part_map_loads_names_and_indices(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps(_custom_map()))
    pm = load_part_map(path)
    assert pm.layout == "my-5" and pm.num_joints == 5 and pm.root == 0
    assert pm.components[COMPONENTS.index("torso")] == (0, 1)
    assert pm.limbs[LIMBS.index("torso")] == (1, 2, 3)
    joints = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    comp, limb = part_positions(joints, pm)
    rel = joints - joints[:, :1]
    np.testing.assert_allclose(limb[:, LIMBS.index("r_arm")], rel[:, [0, 4]].mean(1))


@pytest.mark.parametrize("change, message", [
    (lambda d: d["components"].pop("head"), "missing head"),
    (lambda d: d["limbs"].__setitem__("l_arm", ["nope"]), "unknown joint 'nope'"),
    (lambda d: d["limbs"].__setitem__("l_arm", [7]), "invalid joint 7"),
    (lambda d: d.pop("joints"), "no 'joints'"),
    (lambda d: d.__setitem__("root", 9), "'root'"),
])
def test_bad_custom_part_map_names_file_and_problem(tmp_path, change, message):
    data = _custom_map()
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as err:
        load_part_map(path)
    assert str(path) in str(err.value)


def test_unparsable_or_missing_part_map_file(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid part map"):
        load_part_map(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_part_map(tmp_path / "absent.json")


def test_unknown_layout_says_how_to_supply_a_part_map():
    with pytest.raises(ConfigError, match="--part-map") as err:
        get_part_map("openpose-25")
    assert "openpose-25" in str(err.value)
    with pytest.raises(ConfigError, match="part map"):
        part_positions(np.zeros((2, 25, 3), np.float32), "openpose-25")


def test_part_positions_rejects_wrong_joint_count():
    with pytest.raises(ConfigError, match="expects"):
        part_positions(np.zeros((2, 20, 3), np.float32), "h36m-17")
