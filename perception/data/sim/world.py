"""Ray-castable world: open3d scenes of the static structure plus the actors posed at one time.

A :class:`WorldSnapshot` is built per time (actors move); building costs well under a
millisecond for the few thousand triangles of a scenario, so every sensor casts against an exact
snapshot of its own stamp. Ground-surface materials (road, sidewalk, grass, markings) are not
meshes: the ground is one plane and the material of a hit is computed from its world x, y.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from .actors import ActorKind
from .layout import ROUTE_TAIL_M, RoadGeometry
from .scenario import ActorStates, Scenario

NO_OBJECT = -1
"""Object id of hits on static structure and of misses."""


class Material(enum.IntEnum):
    SKY = 0          # no hit
    ROAD = 1
    SIDEWALK = 2
    GRASS = 3
    MARKING = 4
    BUILDING = 5
    WALL = 6
    POLE = 7
    VEHICLE = 8
    PEDESTRIAN = 9
    CYCLIST = 10


STATIC_MATERIALS = (Material.BUILDING, Material.WALL, Material.POLE)
GROUND_MATERIALS = (Material.ROAD, Material.SIDEWALK, Material.GRASS, Material.MARKING)

# Lidar reflectivity and camera albedo of the non-actor materials (actors carry their own).
REFLECTIVITY = np.zeros(len(Material), np.float32)
REFLECTIVITY[[Material.ROAD, Material.SIDEWALK, Material.GRASS, Material.MARKING,
              Material.BUILDING, Material.WALL, Material.POLE]] = [0.1, 0.22, 0.16, 0.75, 0.35,
                                                                   0.3, 0.5]
ALBEDO = np.zeros((len(Material), 3), np.float32)
ALBEDO[Material.ROAD] = (0.24, 0.24, 0.26)
ALBEDO[Material.SIDEWALK] = (0.58, 0.56, 0.52)
ALBEDO[Material.GRASS] = (0.25, 0.45, 0.15)
ALBEDO[Material.MARKING] = (0.95, 0.95, 0.9)
ALBEDO[Material.POLE] = (0.35, 0.35, 0.38)

_ACTOR_MATERIAL = {ActorKind.PEDESTRIAN: Material.PEDESTRIAN, ActorKind.CYCLIST: Material.CYCLIST}


@dataclass(frozen=True, eq=False)
class Hits:
    """Result of casting N rays.

    Attributes:
        range_m: (N,) float32 distance along the (unit) ray, inf for misses.
        object_id: (N,) int64 actor id, or NO_OBJECT for static structure, ground and misses.
        material: (N,) int8 :class:`Material`.
        normal: (N, 3) float32 unit surface normal (world frame), facing the ray origin.
        point: (N, 3) float32 world-frame hit point (the ray origin for misses).
        albedo: (N, 3) float32 base colour in [0, 1].
        reflectivity: (N,) float32 lidar reflectivity in [0, 1].
    """

    range_m: np.ndarray
    object_id: np.ndarray
    material: np.ndarray
    normal: np.ndarray
    point: np.ndarray
    albedo: np.ndarray
    reflectivity: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return np.isfinite(self.range_m)


@dataclass(frozen=True, eq=False)
class _Part:
    """One triangle mesh with what a hit on it means."""

    vertices: np.ndarray          # (V, 3) float32, local or world frame
    triangles: np.ndarray         # (T, 3) uint32
    object_id: int
    material: Material
    albedo: np.ndarray            # (3,)
    reflectivity: float


def _box_mesh(size_xyz: tuple, center_xyz: tuple) -> tuple[np.ndarray, np.ndarray]:
    mesh = o3d.geometry.TriangleMesh.create_box(*size_xyz)
    vertices = np.asarray(mesh.vertices) - 0.5 * np.asarray(size_xyz) + np.asarray(center_xyz)
    return vertices.astype(np.float32), np.asarray(mesh.triangles).astype(np.uint32)


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    vertices, triangles, offset = [], [], 0
    for v, t in parts:
        vertices.append(v)
        triangles.append(t + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(triangles).astype(np.uint32)


def actor_mesh(kind: ActorKind, size_lwh_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mesh of an actor in its box frame (origin at the box centre, x along the length).

    Every part stays inside the box, so the ground-truth box is the actor's bounding box.
    """
    l, w, h = (float(v) for v in size_lwh_m)
    z0 = -0.5 * h  # bottom of the box
    if kind in (ActorKind.CAR, ActorKind.VAN):
        body_h = 0.55 * h
        cabin_l = (0.55 if kind is ActorKind.CAR else 0.8) * l
        parts = [_box_mesh((l, w, body_h - 0.12 * h), (0.0, 0.0, z0 + 0.5 * (0.12 * h + body_h))),
                 _box_mesh((cabin_l, 0.92 * w, h - body_h),
                           (-0.5 * (l - cabin_l) + 0.05 * l, 0.0, z0 + 0.5 * (body_h + h)))]
    elif kind in (ActorKind.TRUCK, ActorKind.BUS):
        parts = [_box_mesh((l, w, 0.9 * h), (0.0, 0.0, z0 + 0.55 * h))]
    elif kind is ActorKind.PEDESTRIAN:
        parts = [_box_mesh((0.45 * l, 0.7 * w, 0.5 * h), (0.0, 0.0, z0 + 0.25 * h)),
                 _box_mesh((0.6 * l, w, 0.37 * h), (0.0, 0.0, z0 + 0.685 * h)),
                 _box_mesh((0.3 * l, 0.3 * w, 0.13 * h), (0.0, 0.0, z0 + 0.935 * h))]
    else:  # cyclist: bicycle plus rider
        parts = [_box_mesh((l, 0.25 * w, 0.55 * h), (0.0, 0.0, z0 + 0.275 * h)),
                 _box_mesh((0.45 * l, w, 0.45 * h), (-0.1 * l, 0.0, z0 + 0.775 * h))]
    return _merge(parts)


class World:
    """Meshes of a scenario; :meth:`snapshot` poses the actors at one time."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.road = scenario.road
        self._static_parts = _static_parts(scenario)
        self._actor_parts = [
            _Part(*actor_mesh(a.kind, a.size_lwh_m), a.actor_id,
                  _ACTOR_MATERIAL.get(a.kind, Material.VEHICLE), a.albedo_rgb, a.reflectivity)
            for a in scenario.actors]

    def snapshot(self, t_s: float) -> WorldSnapshot:
        """Ray-castable scene with every actor at its pose at ``t_s`` (scenario seconds)."""
        states = self.scenario.actor_states(t_s)
        return WorldSnapshot(self, states)


class WorldSnapshot:
    """An open3d ``RaycastingScene`` of the static structure plus posed actors."""

    def __init__(self, world: World, states: ActorStates):
        self.world = world
        self.states = states
        self.scene = o3d.t.geometry.RaycastingScene()
        parts = list(world._static_parts)
        for part, centre, yaw in zip(world._actor_parts, states.center, states.heading):
            c, s = np.cos(yaw), np.sin(yaw)
            R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            vertices = (part.vertices.astype(np.float64) @ R.T + centre).astype(np.float32)
            parts.append(_Part(vertices, part.triangles, part.object_id, part.material,
                               part.albedo, part.reflectivity))
        for part in parts:
            self.scene.add_triangles(o3d.core.Tensor(part.vertices),
                                     o3d.core.Tensor(part.triangles))
        # Geometry ids are assigned 0, 1, 2, ... in insertion order; one extra row for misses.
        self._object_id = np.array([p.object_id for p in parts] + [NO_OBJECT], np.int64)
        self._material = np.array([int(p.material) for p in parts] + [Material.SKY], np.int8)
        self._albedo = np.array([p.albedo for p in parts] + [(0.0, 0.0, 0.0)], np.float32)
        self._reflectivity = np.array([p.reflectivity for p in parts] + [0.0], np.float32)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """Cast rays from ``origins`` (N, 3) or (1, 3) along unit ``directions`` (N, 3), world
        frame. Everything is computed in float32 (ample for ranges of a few hundred metres);
        the arrays are gathered without boolean indexing, which dominates the cost otherwise."""
        directions = np.asarray(directions, np.float32)
        origins = np.broadcast_to(np.asarray(origins, np.float32), directions.shape)
        rays = np.concatenate([origins, directions], axis=1)
        out = self.scene.cast_rays(o3d.core.Tensor(rays), nthreads=1)
        t_hit = out["t_hit"].numpy()
        # Misses carry open3d's invalid id (2**32 - 1): clamp it onto the extra "sky" row.
        geometry = np.minimum(out["geometry_ids"].numpy(), len(self._object_id) - 1)
        normal = out["primitive_normals"].numpy()
        # Report the face seen by the ray (meshes are closed, but keep it robust to winding).
        facing = np.where(np.einsum("ij,ij->i", normal, directions) > 0, -1.0, 1.0)
        normal *= facing.astype(np.float32)[:, None]
        finite_t = np.where(np.isfinite(t_hit), t_hit, np.float32(0.0))
        point = origins + directions * finite_t[:, None]
        material = self._material[geometry]
        albedo = self._albedo[geometry]
        reflectivity = self._reflectivity[geometry]
        ground = np.flatnonzero(material == Material.GRASS)  # the ground plane is added as grass
        if ground.size:
            ground_material = surface_material(point[ground, :2], self.world.road)
            material[ground] = ground_material
            albedo[ground] = ALBEDO[ground_material]
            reflectivity[ground] = REFLECTIVITY[ground_material]
        return Hits(t_hit, self._object_id[geometry], material, normal, point, albedo,
                    reflectivity)


def _static_parts(scenario: Scenario) -> list[_Part]:
    road = scenario.road
    extent = road.arm_length_m + road.curve_radius_m + 400.0
    ground_v = np.array([[-extent, -extent, 0], [extent, -extent, 0], [extent, extent, 0],
                         [-extent, extent, 0]], np.float32)
    ground_t = np.array([[0, 1, 2], [0, 2, 3]], np.uint32)   # counter-clockwise: normal +z
    parts = [_Part(ground_v, ground_t, NO_OBJECT, Material.GRASS, ALBEDO[Material.GRASS],
                   float(REFLECTIVITY[Material.GRASS]))]
    for b in scenario.buildings:
        material = Material.WALL if b.material == "wall" else Material.BUILDING
        v, t = _box_mesh(b.size_xyz_m, (b.center_xy[0], b.center_xy[1], 0.5 * b.size_xyz_m[2]))
        parts.append(_Part(v, t, NO_OBJECT, material, np.asarray(b.albedo_rgb),
                           float(REFLECTIVITY[material])))
    for p in scenario.poles:
        mesh = o3d.geometry.TriangleMesh.create_cylinder(p.radius_m, p.height_m, resolution=8,
                                                         split=1)
        v = np.asarray(mesh.vertices) + np.array([p.center_xy[0], p.center_xy[1],
                                                  0.5 * p.height_m])
        parts.append(_Part(v.astype(np.float32), np.asarray(mesh.triangles).astype(np.uint32),
                           NO_OBJECT, Material.POLE, ALBEDO[Material.POLE],
                           float(REFLECTIVITY[Material.POLE])))
    return parts


def surface_material(xy: np.ndarray, road: RoadGeometry) -> np.ndarray:
    """(N,) int8 ground :class:`Material` at world positions ``xy`` (N, 2).

    Roads: the east-west and north-south strips of half-width ``half_width_m``, the curve (an
    annulus sector around ``(arm_length_m, curve_radius_m)``) and the straight stub north of
    it; sidewalks border them;
    markings: the centre lines (outside the intersection), lane dividers (dashed) and zebra
    crosswalks next to the intersection; grass elsewhere.
    """
    x, y = xy[:, 0], xy[:, 1]
    A, R, w, s = road.arm_length_m, road.curve_radius_m, road.half_width_m, road.sidewalk_width_m
    ax, ay = np.abs(x), np.abs(y)
    # Distance from the curve's centre line, valid in its quadrant only, and from the straight
    # stub that continues the curve northwards (ROUTE_TAIL_M plus room for the sidewalk).
    in_quadrant = (x >= A) & (y <= R)
    radial = np.abs(np.hypot(x - A, y - R) - R)
    on_stub = (y > R) & (y <= R + ROUTE_TAIL_M + w + s)
    lateral_ew = np.where(in_quadrant, radial, np.where(ax <= A, ay, np.inf))
    lateral_ew = np.where(on_stub, np.minimum(lateral_ew, np.abs(x - (A + R))), lateral_ew)
    lateral_ns = np.where(ay <= A, ax, np.inf)
    lateral = np.minimum(lateral_ew, lateral_ns)
    material = np.full(len(x), Material.GRASS, np.int8)
    material[lateral <= w + s] = Material.SIDEWALK
    road_mask = lateral <= w
    material[road_mask] = Material.ROAD
    in_box = (ax <= w) & (ay <= w)
    outside_box = ~in_box & road_mask
    # Centre lines and lane dividers (dashed, 3 m on / 3 m off) on the EW and NS straights.
    along = np.where(lateral_ew <= lateral_ns, np.where(in_quadrant | on_stub, y, x), y)
    centre_line = outside_box & (lateral < 0.08)
    divider = np.zeros(len(x), bool)
    for k in range(1, road.lanes_per_direction):
        divider |= np.abs(lateral - k * road.lane_width_m) < 0.07
    divider &= outside_box & (np.mod(along, 6.0) < 3.0)
    crosswalk_ew = (ax >= w + 0.5) & (ax <= w + 3.5) & (ay <= w) & (np.mod(y, 1.0) < 0.5)
    crosswalk_ns = (ay >= w + 0.5) & (ay <= w + 3.5) & (ax <= w) & (np.mod(x, 1.0) < 0.5)
    material[centre_line | divider | crosswalk_ew | crosswalk_ns] = Material.MARKING
    return material
