# Encodes a stitched frame with Blender's own encoder, so that a tiled frame is the very file Blender writes for the
# whole frame: the stitch assembles its tiles losslessly (8-bit PNG for a JPEG, ZIP for an OpenEXR with a lossy codec),
# and this writes that image as a JPEG, or an OpenEXR with a lossy codec, with the scene's settings. An encoder outside
# Blender differs: another JPEG library, or another DWA level (Blender 5 derives it from the image quality).
#
#   blender -b --factory-startup -noaudio --disable-autoexec --python-exit-code 2 -P encode_frame.py -- \
#       --input /abs/stitched.png --output /abs/frame_0001.jpg --format JPEG --quality 90 --color-mode RGB
#   ... -- --input /abs/stitched.exr --output /abs/frame_0001.exr --format OPEN_EXR --quality 90 \
#       --exr-codec DWAA --color-depth 16
#
# Prints ENCODE_FRAME_OK <output> when done; any failure exits with status 2 (--python-exit-code).
import argparse
import sys

import bpy


def parse_args():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(prog="encode_frame.py")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--format", required=True, choices=("JPEG", "OPEN_EXR"))
    parser.add_argument("--quality", type=int, required=True)
    parser.add_argument("--color-mode", choices=("BW", "RGB"))
    parser.add_argument("--exr-codec")
    parser.add_argument("--color-depth", choices=("16", "32"))
    return parser.parse_args(argv)


def main():
    args = parse_args()
    image = bpy.data.images.load(args.input, check_existing=False)
    # Data: its pixels go to the encoder as they are, with no color transform (they were transformed when rendered).
    image.colorspace_settings.is_data = True
    # A scene of its own carries the output settings; the image is saved as a render is.
    scene = bpy.data.scenes.new("encode_frame")
    settings = scene.render.image_settings
    settings.file_format = args.format
    if args.format == "JPEG":
        settings.color_mode = args.color_mode
    else:
        settings.color_depth = args.color_depth  # before the codec: B44 and B44A exist for half floats only
        settings.exr_codec = args.exr_codec
    settings.quality = args.quality
    image.save_render(filepath=args.output, scene=scene)
    print("ENCODE_FRAME_OK " + args.output)


main()
