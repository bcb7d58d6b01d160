# Builds a tiny scene whose frame 2 cannot render: its only view layer is keyframed off at frame 2
# (Blender refuses to render with every layer disabled), while frames 1 and 3 render normally.
# A render farm must report that one frame failed and deliver the others.
#
#   blender -b --factory-startup -noaudio --python-exit-code 2 -P make_failing_frame_scene.py -- --out /abs/scene.blend
import argparse
import sys

import bpy


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="make_failing_frame_scene.py")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    # The factory scene: a cube, a light and an active camera, so nothing is wrong until frame 2.
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.render.resolution_x = 64
    scene.render.resolution_y = 48
    scene.frame_start = 1
    scene.frame_end = 3
    layer = scene.view_layers[0]
    for frame, use in [(1, True), (2, False), (3, True)]:
        layer.use = use
        scene.keyframe_insert(data_path='view_layers["%s"].use' % layer.name, frame=frame)
    for fcurve in scene.animation_data.action.fcurves:
        for key in fcurve.keyframe_points:
            key.interpolation = "CONSTANT"
    layer.use = True
    bpy.ops.wm.save_as_mainfile(filepath=args.out)


main()
