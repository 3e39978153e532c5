"""Draw a walker with OpenCV: perspective camera, shaded limbs, a head with a face, clothes, bags.

Body parts are tapered capsules and boxes in 3D, projected through a pinhole
camera and painted far-to-near; each capsule gets a dark rim and a highlight on
the lit side so that limbs read as round. Frames are drawn at twice the size
and shrunk, which anti-aliases edges without blurring the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vid2reid.render import walker as W

WIDTH, HEIGHT = 320, 240
_SS = 2  # supersampling factor
_SHIFT = 4  # OpenCV sub-pixel bits
_LIGHT = np.array([-0.45, -0.9])  # image-plane direction towards the light (up-left)
_LIGHT /= np.linalg.norm(_LIGHT)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: X_cam = R @ X_world + t (OpenCV axes: x right, y down, z forward)."""

    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,)
    view: str

    @property
    def position(self) -> np.ndarray:
        return -self.R.T @ self.t

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.R.T + self.t

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel coordinates (..., 2) and depth (...)."""
        c = self.to_camera(pts)
        z = c[..., 2]
        uv = c[..., :2] / z[..., None] * np.array([self.K[0, 0], self.K[1, 1]]) + self.K[:2, 2]
        return uv, z


def view_camera(view: str, centre_x: float = 0.0, distance: float = 5.2, height: float = 1.0,
                focal: float = 330.0) -> Camera:
    """Camera for a CASIA-B style view angle (degrees as 3 digits).

    ``000`` looks at the walker from the front (walking towards the camera),
    ``090`` from the walker's right side, ``180`` from behind.
    """
    theta = np.radians(float(view))
    target = np.array([centre_x, 0.9, 0.0])
    pos = np.array([centre_x + distance * np.cos(theta), height, distance * np.sin(theta)])
    z = target - pos
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    K = np.array([[focal, 0, WIDTH / 2], [0, focal, HEIGHT / 2], [0, 0, 1]], dtype=np.float64)
    return Camera(K=K, R=R, t=-R @ pos, view=view)


def background(cam: Camera, brightness: float = 1.0, wall_z: float = -3.0) -> np.ndarray:
    """A static room: tiled floor (y = 0) and a panelled wall behind the walk line."""
    h, w = HEIGHT, WIDTH
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays_c = np.stack([(u + 0.5 - cam.K[0, 2]) / cam.K[0, 0], (v + 0.5 - cam.K[1, 2]) / cam.K[1, 1],
                       np.ones_like(u)], -1)
    rays = rays_c @ cam.R  # camera -> world directions
    o = cam.position
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 1] < 0, -o[1] / rays[..., 1], np.inf)
        t_wall = np.where(rays[..., 2] * np.sign(wall_z - o[2]) > 0,
                          (wall_z - o[2]) / rays[..., 2], np.inf)
    floor = t_floor < t_wall
    t_hit = np.minimum(t_floor, t_wall)
    t_hit = np.where(np.isfinite(t_hit), t_hit, 50.0)
    p = o + rays * t_hit[..., None]
    img = np.zeros((h, w, 3))
    # Floor: two-tone tiles of 0.6 m, darker with distance.
    tiles = (np.floor(p[..., 0] / 0.6) + np.floor(p[..., 2] / 0.6)) % 2
    floor_col = np.where(tiles[..., None] > 0, [118, 128, 140], [104, 114, 126])
    shade = np.clip(1.1 - 0.02 * t_hit, 0.7, 1.1)[..., None]
    img = np.where(floor[..., None], floor_col * shade, img)
    # Wall: pale panels 1.2 m wide with a dark skirting board.
    panel = (np.floor(p[..., 0] / 1.2) % 2)[..., None]
    wall_col = np.where(panel > 0, [196, 204, 208], [186, 196, 202])
    wall_col = np.where((p[..., 1] < 0.12)[..., None], [70, 75, 85], wall_col)
    img = np.where(floor[..., None], img, wall_col)
    img = np.clip(img * brightness, 0, 255).astype(np.uint8)
    return img


@dataclass(frozen=True)
class _Part:
    depth: float
    kind: str  # "capsule", "box", "head", "poly"
    data: tuple


def _shade(color: tuple, k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * k, 0, 255)) for c in color)


def _fix(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _SS * (1 << _SHIFT)).astype(np.int32)


def _capsule_2d(img: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float,
                color: tuple, caps: bool = True) -> None:
    d = b - a
    n = np.linalg.norm(d)
    perp = np.array([-d[1], d[0]]) / n if n > 1e-6 else np.array([1.0, 0.0])
    poly = np.array([a + perp * ra, b + perp * rb, b - perp * rb, a - perp * ra])
    cv2.fillConvexPoly(img, _fix(poly), color, cv2.LINE_AA, _SHIFT)
    if caps:
        for c, r in ((a, ra), (b, rb)):
            cv2.circle(img, tuple(_fix(c)), max(1, int(round(r * _SS * (1 << _SHIFT)))), color,
                       -1, cv2.LINE_AA, _SHIFT)


def _shaded_capsule(img: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float,
                    color: tuple, caps: bool = True) -> None:
    """A capsule with a dark rim and a highlight towards the light: reads as a cylinder."""
    _capsule_2d(img, a, b, ra, rb, _shade(color, 0.6), caps)
    off = _LIGHT * 0.18
    _capsule_2d(img, a + off * ra, b + off * rb, ra * 0.8, rb * 0.8, color, caps)
    off = _LIGHT * 0.4
    _capsule_2d(img, a + off * ra, b + off * rb, ra * 0.35, rb * 0.35, _shade(color, 1.25), caps)


def _box_corners(centre: np.ndarray, axes: np.ndarray, half: np.ndarray) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    return centre + (signs * half) @ axes


_BOX_FACES = ((0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5))


def _draw_box(img: np.ndarray, cam: Camera, corners: np.ndarray, color: tuple) -> None:
    uv, _ = cam.project(corners)
    centre = corners.mean(0)
    light3 = np.array([-0.3, 0.8, 0.5])
    light3 /= np.linalg.norm(light3)
    for face in _BOX_FACES:
        fc = corners[list(face)].mean(0)
        normal = fc - centre
        normal /= np.linalg.norm(normal) + 1e-9
        if np.dot(normal, cam.position - fc) <= 0:
            continue
        k = 0.6 + 0.5 * max(0.0, float(np.dot(normal, light3)))
        cv2.fillConvexPoly(img, _fix(uv[list(face)]), _shade(color, k), cv2.LINE_AA, _SHIFT)


def _draw_head(img: np.ndarray, cam: Camera, centre: np.ndarray, radius: float,
               look: W.Appearance) -> None:
    fwd = np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, 1.0, 0.0])
    right = np.array([0.0, 0.0, 1.0])
    to_cam = cam.position - centre
    to_cam /= np.linalg.norm(to_cam)
    c2, z = cam.project(centre)
    r_px = cam.K[0, 0] * radius / z

    def px(p: np.ndarray) -> np.ndarray:
        return cam.project(p)[0]

    hair_c = px(centre - 0.025 * fwd + 0.02 * up)
    if look.long_hair:
        _shaded_capsule(img, hair_c, px(centre - 0.06 * fwd - 0.17 * up), r_px * 0.95,
                        r_px * 0.8, look.hair)
    _shaded_capsule(img, c2, c2, r_px, r_px, _shade(look.skin, 0.85))  # ears/neck side
    _shaded_capsule(img, hair_c, hair_c, r_px * 1.02, r_px * 1.02, look.hair)
    facing = float(np.dot(fwd, to_cam))
    if facing > -0.3:
        face_c = px(centre + 0.045 * fwd - 0.02 * up)
        _shaded_capsule(img, face_c, face_c, r_px * 0.85, r_px * 0.85, look.skin)
        # Ear on the visible side.
        side = right if np.dot(right, to_cam) > 0 else -right
        ear = px(centre + 0.085 * side - 0.01 * up - 0.01 * fwd)
        cv2.circle(img, tuple(_fix(ear)), int(r_px * 0.22 * _SS * 16), _shade(look.skin, 0.75),
                   -1, cv2.LINE_AA, _SHIFT)
        # Eyes, brows, nose and mouth where they face the camera.
        for s in (-1, 1):
            eye3 = centre + 0.085 * fwd + 0.015 * up + s * 0.035 * right
            normal = 0.85 * fwd + s * 0.5 * right
            if np.dot(normal, to_cam) > 0.05:
                e = px(eye3)
                er = max(0.6, r_px * 0.13)
                cv2.circle(img, tuple(_fix(e)), int(er * _SS * 16), (245, 245, 245), -1,
                           cv2.LINE_AA, _SHIFT)
                cv2.circle(img, tuple(_fix(e)), int(er * 0.6 * _SS * 16), (40, 30, 20), -1,
                           cv2.LINE_AA, _SHIFT)
                b0, b1 = px(eye3 + 0.03 * up - 0.015 * right), px(eye3 + 0.03 * up + 0.015 * right)
                cv2.line(img, tuple(_fix(b0)), tuple(_fix(b1)), _shade(look.hair, 0.8),
                         max(1, int(r_px * 0.08 * _SS)), cv2.LINE_AA, _SHIFT)
        nose = px(centre + 0.105 * fwd - 0.01 * up)
        cv2.circle(img, tuple(_fix(nose)), int(max(0.6, r_px * 0.14) * _SS * 16),
                   _shade(look.skin, 0.8), -1, cv2.LINE_AA, _SHIFT)
        m0 = px(centre + 0.09 * fwd - 0.05 * up - 0.02 * right)
        m1 = px(centre + 0.09 * fwd - 0.05 * up + 0.02 * right)
        cv2.line(img, tuple(_fix(m0)), tuple(_fix(m1)), (60, 60, 150),
                 max(1, int(r_px * 0.1 * _SS)), cv2.LINE_AA, _SHIFT)


def _parts(frame_joints: np.ndarray, pitch: np.ndarray, walk: W.Walk, cam: Camera) -> list[_Part]:
    """The body as 3D primitives with their depth for far-to-near painting."""
    J = frame_joints
    ident, look, cond = walk.identity, walk.identity.look, walk.condition
    s = ident.height / 1.75
    g = look.girth * s
    fwd = np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, 1.0, 0.0])
    right = np.array([0.0, 0.0, 1.0])
    parts: list[_Part] = []

    def depth(*pts: np.ndarray) -> float:
        return float(np.mean([cam.to_camera(p)[2] for p in pts]))

    def cap(a: np.ndarray, b: np.ndarray, ra: float, rb: float, color: tuple, bias: float = 0.0,
            caps: bool = True) -> None:
        parts.append(_Part(depth(a, b) + bias, "capsule", (a, b, ra, rb, color, caps)))

    coat = cond == "cl"
    top = look.coat if coat else look.shirt
    # Limbs on the side away from the camera are in shadow, as in a lit room;
    # this also keeps left and right limbs apart in the side view.
    near = 1 if np.dot(right, cam.position - J[W.PELVIS]) > 0 else -1

    def side_shade(color: tuple, side: int) -> tuple:
        return color if side == near else _shade(color, 0.72)

    sleeves = coat or look.long_sleeves
    # Legs: thighs and shanks in trousers, shoes.
    for hip, knee, ank, k in ((W.R_HIP, W.R_KNEE, W.R_ANKLE, 0), (W.L_HIP, W.L_KNEE, W.L_ANKLE, 1)):
        trousers = side_shade(look.trousers, 1 - 2 * k)
        cap(J[hip], J[knee], 0.085 * g, 0.062 * g, trousers)
        cap(J[knee], J[ank], 0.06 * g, 0.045 * g, trousers)
        a = pitch[k]
        toe_dir = np.cos(a) * fwd + np.sin(a) * up
        heel = J[ank] - 0.045 * s * toe_dir - 0.035 * s * up
        toe = J[ank] + 0.16 * s * toe_dir - 0.045 * s * up
        cap(heel, toe, 0.042 * s, 0.036 * s, look.shoes, bias=-0.01)
    # Torso: a chest-to-pelvis capsule, shoulder and hip girdles, a front plate.
    torso_r = (0.125 if not coat else 0.15) * g
    cap(J[W.PELVIS] + 0.02 * up, J[W.THORAX] - 0.03 * up, torso_r * 0.95, torso_r, top, bias=0.02)
    cap(J[W.L_SHOULDER], J[W.R_SHOULDER], 0.065 * g, 0.065 * g, top, bias=0.03)
    cap(J[W.L_HIP], J[W.R_HIP], 0.09 * g, 0.09 * g, top if coat else look.trousers, bias=0.05)
    # Neck and head.
    cap(J[W.THORAX], 0.5 * (J[W.NECK] + J[W.THORAX]) + 0.02 * up, 0.045 * s, 0.045 * s,
        _shade(look.skin, 0.9), bias=0.01)
    head_c = 0.45 * J[W.NECK] + 0.55 * J[W.HEAD] - 0.03 * s * fwd
    parts.append(_Part(depth(head_c) - 0.001, "head", (head_c, 0.105 * s)))
    if coat:  # coat skirt down to the knees
        knee_y = 0.5 * (J[W.R_KNEE, 1] + J[W.L_KNEE, 1]) - 0.04
        hem = np.array([J[W.PELVIS, 0] + 0.02, knee_y, J[W.PELVIS, 2]])
        cap(J[W.PELVIS] + 0.08 * up, hem, 0.16 * g, 0.2 * g, look.coat, bias=-0.16, caps=False)
    # Arms.
    for sh, el, wr, side in ((W.R_SHOULDER, W.R_ELBOW, W.R_WRIST, 1),
                             (W.L_SHOULDER, W.L_ELBOW, W.L_WRIST, -1)):
        r_up = (0.062 if not coat else 0.075) * g
        sleeve, skin = side_shade(top, side), side_shade(look.skin, side)
        cap(J[sh], J[el], r_up, r_up * 0.82, sleeve, bias=-0.02)
        cap(J[el], J[wr], r_up * 0.82, 0.04 * g, sleeve if sleeves else skin, bias=-0.02)
        hand = J[wr] + 0.06 * s * (J[wr] - J[el]) / np.linalg.norm(J[wr] - J[el])
        cap(J[wr], hand, 0.042 * s, 0.045 * s, skin, bias=-0.025)
    if cond == "bg":
        kind = ident.bag_kind
        axes = np.stack([fwd, up, right])
        if kind == "hand":
            c = J[W.R_WRIST] - 0.2 * up + 0.03 * right
            corners = _box_corners(c, axes, np.array([0.17, 0.13, 0.06]))
            parts.append(_Part(depth(c) - 0.03, "box", (corners, look.bag)))
            cap(J[W.R_WRIST], c + 0.12 * up, 0.012, 0.012, _shade(look.bag, 0.7), bias=-0.05)
        elif kind == "shoulder":
            c = J[W.L_HIP] - 0.1 * right + 0.03 * up
            corners = _box_corners(c, axes, np.array([0.16, 0.13, 0.05]))
            parts.append(_Part(depth(c) + 0.0, "box", (corners, look.bag)))
            cap(J[W.R_SHOULDER] - 0.02 * right, c + 0.12 * up, 0.015, 0.015,
                _shade(look.bag, 0.7), bias=-0.16)
        else:
            c = 0.3 * J[W.SPINE] + 0.7 * J[W.THORAX] - 0.2 * s * fwd - 0.05 * up
            corners = _box_corners(c, axes, np.array([0.09, 0.22, 0.16]))
            parts.append(_Part(depth(c) + 0.02, "box", (corners, look.bag)))
            for sh in (W.R_SHOULDER, W.L_SHOULDER):
                cap(J[sh] - 0.02 * fwd + 0.02 * up, J[sh] - 0.08 * up + 0.05 * fwd, 0.018, 0.018,
                    _shade(look.bag, 0.7), bias=-0.14)
    return parts


def draw_walker(bg: np.ndarray, frame_joints: np.ndarray, pitch: np.ndarray, walk: W.Walk,
                cam: Camera) -> np.ndarray:
    """One frame: ``bg`` with the walker (joints (17, 3) world metres) painted over it."""
    big = cv2.resize(bg, (bg.shape[1] * _SS, bg.shape[0] * _SS), interpolation=cv2.INTER_NEAREST)
    # Soft contact shadow on the floor.
    pel = frame_joints[W.PELVIS]
    ring = np.array([[pel[0] + 0.35 * np.cos(a), 0.0, pel[2] + 0.22 * np.sin(a)]
                     for a in np.linspace(0, 2 * np.pi, 24, endpoint=False)])
    uv, _ = cam.project(ring)
    shadow = big.copy()
    cv2.fillPoly(shadow, [_fix(uv)], (0, 0, 0), cv2.LINE_AA, _SHIFT)
    big = cv2.addWeighted(big, 0.75, shadow, 0.25, 0)
    parts = sorted(_parts(frame_joints, pitch, walk, cam), key=lambda p: -p.depth)
    for part in parts:
        if part.kind == "capsule":
            a, b, ra, rb, color, caps = part.data
            (ua, ub), (za, zb) = cam.project(np.stack([a, b]))
            f = cam.K[0, 0]
            _shaded_capsule(big, ua, ub, f * ra / za, f * rb / zb, color, caps)
        elif part.kind == "box":
            corners, color = part.data
            _draw_box(big, cam, corners, color)
        elif part.kind == "head":
            centre, radius = part.data
            _draw_head(big, cam, centre, radius, walk.identity.look)
    return cv2.resize(big, (bg.shape[1], bg.shape[0]), interpolation=cv2.INTER_AREA)
