# Compares two images' pixels as Blender decodes them (its own OpenEXR, PNG and TIFF readers): an independent check
# of what the farm's stitcher (OpenImageIO) wrote. Prints one JSON line:
#   {"width", "height", "channels", "sameShape", "differingSamples", "maxDifference"}
#
#   blender -b --factory-startup -noaudio --python-exit-code 2 -P compare_images.py -- <a> <b>
import array
import json
import sys

import bpy


def load(path):
    image = bpy.data.images.load(path, check_existing=False)
    width, height = image.size
    pixels = array.array("f", bytes(4 * width * height * 4))
    image.pixels.foreach_get(pixels)
    return width, height, image.channels, pixels


def main():
    first, second = sys.argv[sys.argv.index("--") + 1:][:2]
    a, b = load(first), load(second)
    same_shape = a[:3] == b[:3]
    result = {"width": a[0], "height": a[1], "channels": a[2], "sameShape": same_shape}
    if same_shape:
        # NaN equals NaN here (the same sample in both), and differs from any number (infinitely).
        differences = [0.0 if x == y or (x != x and y != y) else abs(x - y) if x == x and y == y else float("inf") for x, y in zip(a[3], b[3])]
        result["differingSamples"] = sum(1 for difference in differences if difference != 0.0)
        result["maxDifference"] = min(max(differences, default=0.0), 1e300)  # JSON has no Infinity
    print("COMPARE_IMAGES " + json.dumps(result))


main()
