# A shot that gets heavier over time, for the quote benchmark: a glass sphere grows from a speck to filling the frame,
# so a frame's Cycles render time rises with the pixels it covers (refraction costs more bounces than the backdrop).
#
#   blender -b --factory-startup -noaudio --python-exit-code 2 -P growing_scene.py -- \
#       --out /abs/growing.blend --frames 48 --samples 64 --resolution 160x120
import argparse
import sys

import bpy


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="growing_scene.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--resolution", default="160x120")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.resolution.split("x"))

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = 1
    scene.frame_end = args.frames
    scene.render.engine = "CYCLES"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 12
    scene.cycles.transmission_bounces = 12
    scene.render.resolution_x = width
    scene.render.resolution_y = height
    scene.render.resolution_percentage = 100

    world = bpy.data.worlds.new("world")
    world.color = (0.05, 0.05, 0.05)
    scene.world = world

    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.location = (0, -6, 0)
    camera.rotation_euler = (1.5708, 0, 0)
    scene.collection.objects.link(camera)
    scene.camera = camera

    light = bpy.data.objects.new("light", bpy.data.lights.new("light", "POINT"))
    light.data.energy = 800
    light.location = (2, -3, 3)
    scene.collection.objects.link(light)

    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 4, 0), rotation=(1.5708, 0, 0))
    backdrop = bpy.context.active_object
    checker = bpy.data.materials.new("checker")
    checker.use_nodes = True
    nodes = checker.node_tree.nodes
    texture = nodes.new("ShaderNodeTexChecker")
    texture.inputs["Scale"].default_value = 20
    checker.node_tree.links.new(texture.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    backdrop.data.materials.append(checker)

    bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, location=(0, 0, 0))
    sphere = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    glass = bpy.data.materials.new("glass")
    glass.use_nodes = True
    glass_nodes = glass.node_tree.nodes
    glass_nodes.remove(glass_nodes["Principled BSDF"])
    bsdf = glass_nodes.new("ShaderNodeBsdfGlass")
    glass.node_tree.links.new(bsdf.outputs["BSDF"], glass_nodes["Material Output"].inputs["Surface"])
    sphere.data.materials.append(glass)
    for frame, scale in ((1, 0.05), (args.frames, 2.6)):
        sphere.scale = (scale, scale, scale)
        sphere.keyframe_insert(data_path="scale", frame=frame)
    for curve in sphere.animation_data.action.fcurves:
        for point in curve.keyframe_points:
            point.interpolation = "LINEAR"

    bpy.context.preferences.filepaths.save_version = 0
    bpy.ops.wm.save_as_mainfile(filepath=args.out, compress=False)


main()
