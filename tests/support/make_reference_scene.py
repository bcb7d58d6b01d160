# Turns the textured test scene (opened on Blender's command line) into one that references files in every
# way `render` must handle: a single file, an image sequence, UDIM tiles, a packed image, an absolute path
# and a path outside the scene's directory. The caller puts the image files in place first.
#
#   blender -b <textured scene.blend> --factory-startup -noaudio --python-exit-code 2 \
#       -P make_reference_scene.py -- --out /abs/root/shot/refs.blend --absolute /abs/root/abs.png
import argparse
import sys

import bpy


def main():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="make_reference_scene.py")
    parser.add_argument("--out", required=True)
    parser.add_argument("--absolute", required=True)
    args = parser.parse_args(argv)

    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 backups
    # Saved first, paths untouched, so "//" now means the new file's directory.
    bpy.ops.wm.save_as_mainfile(filepath=args.out, compress=False, relative_remap=False)

    sequence = bpy.data.images.load("//seq/frame_0001.png")
    sequence.name = "sequence"
    sequence.source = "SEQUENCE"

    tiles = bpy.data.images.load("//udim/wood.1001.png")
    tiles.name = "tiles"
    tiles.source = "TILED"
    if tiles.tiles.get(1002) is None:
        tiles.tiles.new(tile_number=1002)
    tiles.filepath = "//udim/wood.<UDIM>.png"

    absolute = bpy.data.images.load(args.absolute)
    absolute.name = "absolute"
    absolute.filepath = args.absolute

    outside = bpy.data.images.load("//../elsewhere/out.png")
    outside.name = "outside"
    outside.filepath = "//../elsewhere/out.png"

    packed = bpy.data.images.load("//seq/frame_0002.png")
    packed.name = "packed"
    packed.pack()

    # Unused images are not saved without a fake user.
    for image in (sequence, tiles, absolute, outside, packed):
        image.use_fake_user = True
    bpy.ops.wm.save_mainfile(compress=False, relative_remap=False)
    print("MAKE_REFERENCE_SCENE_OK", args.out)


main()
