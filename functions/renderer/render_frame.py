# Renders one frame of the loaded .blend to exactly one file, then prints one machine-readable line.
#
#   blender -b <scene.blend> --factory-startup -noaudio --disable-autoexec --python-exit-code 2 \
#       -P render_frame.py -- --frame N --output /abs/frame_0001.png --format PNG --threads T \
#       [--engine CYCLES|EEVEE|WORKBENCH] [--samples N] [--resolution-x X] [--resolution-y Y] [--percentage P] \
#       --allowed-engines CYCLES,EEVEE,WORKBENCH --max-resolution R --max-samples S
#
# The limits are the farm's: what actually renders (the scene Blender opened, with the overrides applied, and
# every other scene its compositor or sequencer renders) must stay within them, or the frame fails with
# limit_exceeded before anything renders.
#
# Last line on stdout: `RENDER_FRAME_RESULT {json}`, either
#   {"ok": true, "frame", "output", "renderSeconds", "engine", "blenderVersion", "missingFiles"}
#   {"ok": false, "code", "message"}                 (and the exit status is 3)
# An exception this script does not catch exits with status 2 through --python-exit-code.
#
# Works with Blender 3.4 up to 5.x. The scene is untrusted: this script never enables Python
# auto-execution and never runs text blocks or anything else that came with the file.
import argparse
import json
import os
import sys
import time
import traceback

import bpy

RESULT_PREFIX = "RENDER_FRAME_RESULT "
FAILURE_EXIT_STATUS = 3
MAX_FRAME = 1048574  # Blender's MAXFRAME
FORMATS = ("PNG", "JPEG", "OPEN_EXR", "TIFF")
# Blender's engine ids by the farm's engine names, and back.
ENGINE_CANDIDATES = {
    "CYCLES": ("CYCLES",),
    # BLENDER_EEVEE in 3.x-4.1 (legacy EEVEE) and 5.x; only BLENDER_EEVEE_NEXT exists in 4.2-4.5.
    "EEVEE": ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"),
    "WORKBENCH": ("BLENDER_WORKBENCH",),
}
FARM_ENGINES = {engine_id: name for name, ids in ENGINE_CANDIDATES.items() for engine_id in ids}


class RenderFailure(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class ArgumentParser(argparse.ArgumentParser):
    # argparse would print usage and exit 2; a failure must still end with the result line.
    def error(self, message):
        raise RenderFailure("bad_argument", "render_frame.py: " + message)


def bounded_int(name, low, high):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be a whole number, got %r" % (name, text))
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("%s must be between %d and %d, got %d" % (name, low, high, value))
        return value

    return parse


def engine_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINE_CANDIDATES]
    if not names or unknown:
        raise argparse.ArgumentTypeError("--allowed-engines must list engines out of %s, got %r" % (", ".join(sorted(ENGINE_CANDIDATES)), text))
    return names


def parse_args(argv):
    parser = ArgumentParser(prog="render_frame.py", add_help=False)
    parser.add_argument("--frame", required=True, type=bounded_int("--frame", -MAX_FRAME, MAX_FRAME))
    parser.add_argument("--output", required=True)
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--threads", required=True, type=bounded_int("--threads", 1, 1024))
    parser.add_argument("--engine", choices=sorted(ENGINE_CANDIDATES))
    parser.add_argument("--samples", type=bounded_int("--samples", 1, 1 << 24))
    parser.add_argument("--resolution-x", type=bounded_int("--resolution-x", 1, 65536))
    parser.add_argument("--resolution-y", type=bounded_int("--resolution-y", 1, 65536))
    parser.add_argument("--percentage", type=bounded_int("--percentage", 1, 100))
    parser.add_argument("--allowed-engines", required=True, type=engine_list)
    parser.add_argument("--max-resolution", required=True, type=bounded_int("--max-resolution", 1, 1 << 20))
    parser.add_argument("--max-samples", required=True, type=bounded_int("--max-samples", 1, 1 << 30))
    args = parser.parse_args(argv)
    if not os.path.isabs(args.output):
        raise RenderFailure("bad_argument", "--output must be an absolute path, got %r" % args.output)
    return args


def script_argv():
    if "--" not in sys.argv:
        raise RenderFailure("bad_argument", "render_frame.py needs its arguments after '--' on Blender's command line")
    return sys.argv[sys.argv.index("--") + 1:]


def set_checked(owner, attribute, value, label):
    """Assigns an RNA property and fails unless it reads back unchanged (RNA clamps out-of-range values silently)."""
    try:
        setattr(owner, attribute, value)
    except (TypeError, ValueError, AttributeError) as error:
        raise RenderFailure("bad_argument", "%s=%r is not accepted by Blender %s: %s" % (label, value, bpy.app.version_string, error))
    actual = getattr(owner, attribute)
    if actual != value:
        raise RenderFailure("bad_argument", "%s=%r is outside what Blender %s accepts (it would use %r)" % (label, value, bpy.app.version_string, actual))


def select_engine(scene, name):
    render = scene.render
    errors = []
    for engine_id in ENGINE_CANDIDATES[name]:
        try:
            render.engine = engine_id
            return engine_id
        except TypeError as error:
            errors.append(str(error))
    # The TypeError lists the engine ids this Blender has registered.
    raise RenderFailure("engine_unavailable", "engine %s is not available in Blender %s (%s)" % (name, bpy.app.version_string, errors[-1]))


def set_samples(scene, engine_id, samples):
    if engine_id == "CYCLES":
        set_checked(scene.cycles, "samples", samples, "samples")
    elif engine_id.startswith("BLENDER_EEVEE"):
        set_checked(scene.eevee, "taa_render_samples", samples, "samples")
    else:
        # Workbench has no sample count, only an anti-aliasing preset: the scene's own stays.
        print("render_frame.py: samples=%d ignored for engine %s" % (samples, engine_id))


def has_openimagedenoise():
    build_flag = getattr(bpy.app.build_options, "openimagedenoise", None)
    if build_flag is not None:
        return bool(build_flag)
    # Blender 3.x/4.x builds report OpenImageDenoise only through the Cycles module.
    try:
        import _cycles
    except ImportError:
        return False
    return bool(getattr(_cycles, "with_openimagedenoise", False))


def configure_cycles(scene):
    cycles = getattr(scene, "cycles", None)
    if cycles is None:
        return
    cycles.device = "CPU"
    if not has_openimagedenoise():
        cycles.use_denoising = False


def set_format(scene, file_format):
    settings = scene.render.image_settings
    # Blender 5 splits formats by media type; a scene saved for video output would reject PNG.
    if hasattr(settings, "media_type") and settings.media_type != "IMAGE":
        settings.media_type = "IMAGE"
    set_checked(settings, "file_format", file_format, "format")


def missing_files():
    """External files the scene uses that are not on disk: Blender renders those silently as magenta or nothing."""
    missing = []
    for image in bpy.data.images:
        if image.type != "IMAGE" or image.source not in ("FILE", "MOVIE") or image.packed_file or image.users == 0:
            continue
        if not os.path.exists(bpy.path.abspath(image.filepath, library=image.library)):
            missing.append(image.filepath)
    for library in bpy.data.libraries:
        if library.packed_file is None and not os.path.exists(bpy.path.abspath(library.filepath)):
            missing.append(library.filepath)
    return sorted(set(missing))


def compositor_trees(scene):
    # scene.node_tree up to 4.x, scene.compositing_node_group from 5.0, plus node groups used inside them.
    trees = []
    for attribute in ("node_tree", "compositing_node_group"):
        tree = getattr(scene, attribute, None)
        if tree is not None and tree not in trees:
            trees.append(tree)
    for group in bpy.data.node_groups:
        if group.bl_idname == "CompositorNodeTree" and group not in trees:
            trees.append(group)
    return trees


def mute_file_outputs(scene):
    # A File Output node writes wherever the scene says: an untrusted scene must not write outside the work dir.
    muted = []
    for tree in compositor_trees(scene):
        for node in tree.nodes:
            if node.bl_idname == "CompositorNodeOutputFile" and not node.mute:
                node.mute = True
                muted.append(node.name)
    return muted


def render_samples(scene):
    """The most samples any view layer of the scene renders with; None for Workbench, which has no sample count."""
    engine_id = scene.render.engine
    if engine_id == "CYCLES":
        samples = scene.cycles.samples
        # A view layer's own count replaces the scene's, unless Cycles is told to ignore or bound it.
        layer_mode = getattr(scene.cycles, "use_layer_samples", "USE")
    elif engine_id.startswith("BLENDER_EEVEE"):
        samples = scene.eevee.taa_render_samples
        layer_mode = "USE"
    else:
        return None
    if layer_mode == "USE":
        for layer in scene.view_layers:
            if layer.use and getattr(layer, "samples", 0) > samples:
                samples = layer.samples
    return samples


def output_size(scene):
    # Blender's own arithmetic (BKE_render_resolution): integer pixels after the percentage.
    render_settings = scene.render
    return (
        render_settings.resolution_x * render_settings.resolution_percentage // 100,
        render_settings.resolution_y * render_settings.resolution_percentage // 100,
    )


def check_limits(scene, args, what):
    """Fails with limit_exceeded unless the scene's engine, samples and output size are within the farm's limits."""
    engine = FARM_ENGINES.get(scene.render.engine)
    if engine not in args.allowed_engines:
        raise RenderFailure("limit_exceeded", "%s renders with engine %s, which this farm does not allow (allowed: %s)" % (what, engine or scene.render.engine, ", ".join(args.allowed_engines)))
    samples = render_samples(scene)
    if samples is not None and samples > args.max_samples:
        raise RenderFailure("limit_exceeded", "%s renders %d samples, over this farm's limit of %d" % (what, samples, args.max_samples))
    width, height = output_size(scene)
    if max(width, height) > args.max_resolution:
        raise RenderFailure("limit_exceeded", "%s renders %dx%d pixels, over this farm's limit of %d pixels per side" % (what, width, height, args.max_resolution))


def sequencer_strips(scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    # sequences_all up to 4.x, strips_all from 5.0: every strip, inside meta strips too.
    for attribute in ("strips_all", "sequences_all"):
        strips = getattr(editor, attribute, None)
        if strips is not None:
            return list(strips)
    return []


def scenes_rendered_with(scene):
    """Every other scene that renders when this one does: compositor Render Layers nodes and sequencer scene strips, followed through the scenes they name."""
    found = []
    seen = {scene.name_full}
    pending = [scene]
    while pending:
        current = pending.pop()
        sources = []
        for tree in compositor_trees(current):
            for node in tree.nodes:
                if node.bl_idname == "CompositorNodeRLayers" and node.scene is not None:
                    sources.append((node.scene, 'compositor node "%s" of scene "%s"' % (node.name, current.name)))
        for strip in sequencer_strips(current):
            if strip.type == "SCENE" and strip.scene is not None:
                sources.append((strip.scene, 'sequencer strip "%s" of scene "%s"' % (strip.name, current.name)))
        for other, via in sources:
            if other.name_full in seen:
                continue
            seen.add(other.name_full)
            found.append((other, via))
            pending.append(other)
    return found


def render_result_image():
    # Found by type: a user image may also be named "Render Result".
    for image in bpy.data.images:
        if image.type == "RENDER_RESULT":
            return image
    raise RenderFailure("no_output", "Blender produced no render result")


def render(args):
    blend_path = bpy.data.filepath
    if not blend_path:
        raise RenderFailure("scene_not_loaded", "Blender has no .blend file loaded; it could not read the scene given on its command line")
    scene = bpy.context.scene
    where = 'scene "%s" of %s' % (scene.name, blend_path)

    # Before the camera check: timeline markers can bind a different camera to each frame.
    scene.frame_set(args.frame)
    if scene.camera is None:
        raise RenderFailure("no_camera", "%s has no active camera at frame %d; set Scene Properties > Camera and save the file" % (where, args.frame))

    engine_id = select_engine(scene, args.engine) if args.engine else scene.render.engine
    if args.samples is not None:
        set_samples(scene, engine_id, args.samples)
    render_settings = scene.render
    if args.resolution_x is not None:
        set_checked(render_settings, "resolution_x", args.resolution_x, "resolution.x")
    if args.resolution_y is not None:
        set_checked(render_settings, "resolution_y", args.resolution_y, "resolution.y")
    if args.percentage is not None:
        set_checked(render_settings, "resolution_percentage", args.percentage, "resolution.percentage")
    set_format(scene, args.format)
    configure_cycles(scene)
    render_settings.threads_mode = "FIXED"
    set_checked(render_settings, "threads", args.threads, "threads")

    # On what renders, not on what the job asked or the preflight read: the two can disagree.
    check_limits(scene, args, where)
    for other, via in scenes_rendered_with(scene):
        check_limits(other, args, 'scene "%s" (rendered by %s)' % (other.name, via))

    missing = missing_files()
    for path in missing:
        print("render_frame.py: warning: missing file %s" % path)
    muted = mute_file_outputs(scene)
    for name in muted:
        print("render_frame.py: warning: compositor File Output node %r muted: the farm writes only the frame" % name)

    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    if os.path.exists(args.output):
        os.remove(args.output)
    started = time.monotonic()
    try:
        status = bpy.ops.render.render(write_still=False)
    except RuntimeError as error:
        raise RenderFailure("render_failed", "Blender could not render frame %d of %s: %s" % (args.frame, where, error))
    if "FINISHED" not in status:
        raise RenderFailure("render_failed", "Blender did not finish rendering frame %d of %s (%s)" % (args.frame, where, ", ".join(sorted(status))))
    render_seconds = time.monotonic() - started

    image = render_result_image()
    # save_render applies the scene's view transform and output settings exactly as `blender -f` does.
    image.save_render(filepath=args.output, scene=scene)
    if not os.path.isfile(args.output) or os.path.getsize(args.output) == 0:
        raise RenderFailure("no_output", "Blender rendered frame %d of %s but wrote nothing to %s" % (args.frame, where, args.output))

    return {
        "ok": True,
        "frame": args.frame,
        "output": args.output,
        "renderSeconds": round(render_seconds, 3),
        "engine": scene.render.engine,
        "blenderVersion": bpy.app.version_string,
        "missingFiles": missing,
        "mutedFileOutputs": muted,
    }


def emit(result):
    sys.stdout.flush()
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def main():
    try:
        result = render(parse_args(script_argv()))
    except RenderFailure as failure:
        emit({"ok": False, "code": failure.code, "message": failure.message})
        sys.exit(FAILURE_EXIT_STATUS)
    except Exception as error:
        traceback.print_exc()
        emit({"ok": False, "code": "script_error", "message": "render_frame.py failed: %s: %s" % (type(error).__name__, error)})
        sys.exit(FAILURE_EXIT_STATUS)
    emit(result)


main()
