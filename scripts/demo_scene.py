# Builds the demo scene for `npm run demo`: four colored shapes hopping and spinning over a soft
# floor, one 24-frame loop, Cycles at low samples and 320x180 so the whole demo renders in seconds.
#
#   blender -b --factory-startup -noaudio --python-exit-code 2 -P scripts/demo_scene.py -- --out /abs/demo.blend
import argparse
import math
import sys

import bpy

FRAMES = 24


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="demo_scene.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--resolution-x", type=int, default=320)
    parser.add_argument("--resolution-y", type=int, default=180)
    return parser.parse_args(argv)


def material(name, color, roughness=0.35):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = color
    bsdf.inputs["Roughness"].default_value = roughness
    mat.diffuse_color = color  # what Workbench and the viewport show
    return mat


def add_shape(kind, location, color, size):
    if kind == "sphere":
        bpy.ops.mesh.primitive_uv_sphere_add(radius=size, location=location, segments=32, ring_count=16)
        bpy.ops.object.shade_smooth()
    elif kind == "cube":
        bpy.ops.mesh.primitive_cube_add(size=size * 1.6, location=location)
        bevel = bpy.context.object.modifiers.new("bevel", "BEVEL")
        bevel.width = 0.08
        bevel.segments = 3
    elif kind == "torus":
        bpy.ops.mesh.primitive_torus_add(major_radius=size, minor_radius=size * 0.35, location=location)
        bpy.ops.object.shade_smooth()
    elif kind == "cone":
        bpy.ops.mesh.primitive_cone_add(radius1=size, depth=size * 2, location=location, vertices=48)
        bpy.ops.object.shade_smooth()
    obj = bpy.context.object
    obj.name = kind
    obj.data.materials.append(material(kind, color))
    return obj


def animate(obj, base_z, phase, height, spin_axis):
    # A loop: frame 1 and frame FRAMES + 1 are the same pose, so the MP4 repeats seamlessly.
    for frame in range(1, FRAMES + 2):
        t = (frame - 1) / FRAMES
        hop = abs(math.sin(math.pi * (t * 2 + phase)))
        obj.location.z = base_z + height * hop
        obj.keyframe_insert("location", index=2, frame=frame)
        rotation = list(obj.rotation_euler)
        rotation[spin_axis] = 2 * math.pi * t
        obj.rotation_euler = rotation
        obj.keyframe_insert("rotation_euler", frame=frame)
    for fcurve in obj.animation_data.action.fcurves:
        for key in fcurve.keyframe_points:
            key.interpolation = "LINEAR"


def main():
    args = parse_args()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = 1
    scene.frame_end = FRAMES
    scene.render.fps = 24

    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
    bpy.context.object.data.materials.append(material("floor", (0.30, 0.28, 0.34, 1.0), roughness=0.6))

    shapes = [
        ("sphere", (-3.0, 0.0, 0.8), (0.90, 0.20, 0.25, 1.0), 0.8, 0.00, 1.4, 2),
        ("cube", (-1.0, 0.6, 0.8), (0.15, 0.55, 0.95, 1.0), 0.8, 0.25, 1.0, 2),
        ("torus", (1.0, 0.0, 0.9), (0.98, 0.75, 0.10, 1.0), 0.75, 0.50, 1.2, 0),
        ("cone", (3.0, 0.6, 0.8), (0.25, 0.80, 0.40, 1.0), 0.8, 0.75, 1.0, 2),
    ]
    for kind, location, color, size, phase, height, axis in shapes:
        animate(add_shape(kind, location, color, size), location[2], phase, height, axis)

    bpy.ops.object.light_add(type="SUN", location=(4, -4, 8))
    sun = bpy.context.object
    sun.data.energy = 3.0
    sun.data.angle = math.radians(4)
    sun.rotation_euler = (math.radians(40), math.radians(15), math.radians(30))

    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.45, 0.55, 0.80, 1.0)
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.5
    scene.world = world

    bpy.ops.object.camera_add(location=(0, -10, 5.5))
    camera = bpy.context.object
    camera.rotation_euler = (math.radians(66), 0, 0)
    camera.data.lens = 40
    scene.camera = camera

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 3
    scene.cycles.use_adaptive_sampling = False
    scene.view_settings.view_transform = "Standard"
    scene.render.resolution_x = args.resolution_x
    scene.render.resolution_y = args.resolution_y
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"

    bpy.ops.wm.save_as_mainfile(filepath=args.out, compress=False)


main()
