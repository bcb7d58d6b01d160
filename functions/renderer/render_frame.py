# A Blender that renders frames on request, one after another, keeping the scene loaded between frames of one
# job ("sticky" Blender): the farm starts it once per renderer and reuses it while frames share a scene.
#
#   blender -b --factory-startup -noaudio --disable-autoexec --python-exit-code 2 \
#       -P render_frame.py -- --serve --work-dir /abs/work
#
# Requests on stdin, one JSON object per line:
#   {"id", "scene": "/abs/scene.blend", "reload": bool, "frame", "output": "/abs/frame_0001.png",
#    "tempDir": "/abs/dir", "format": "PNG", "threads", ["engine", "samples", "resolution": {"x", "y", "percentage"}],
#    "limits": {"allowedEngines": ["CYCLES", ...], "maxResolution", "maxSamples"}, ["tile": {"index", "of"}]}
# The scene is (re)loaded when it is another file, when "reload" says so (another job, another version), and for
# every frame of a scene whose state depends on the frames rendered before (unbaked simulations). Each frame
# applies the request's overrides, checks the farm's limits on what actually renders (the scene, with the
# overrides, and every other scene its compositor or sequencer renders), renders to exactly "output" with
# Blender's temp dir (tile buffers) inside "tempDir", and answers with two lines, both naming the request's id:
#   stderr: RENDER_FRAME_END <id>             (every line the frame wrote to stderr came before it)
#   stdout: RENDER_FRAME_RESULT {json}        (the last line of the frame on stdout), either
#     {"id", "ok": true, "frame", "output", "renderSeconds", "engine", "blenderVersion", "missingFiles",
#      "mutedFileOutputs", "sceneLoaded", "loadSeconds", "sceneKept", "receivedAt", ["tile"]}
#   ("sceneKept": the scene stays loaded for the next frame; "receivedAt": when the request was read, seconds since
#   the epoch, which tells the farm how long a Blender it just started took to be ready.)
#     {"id", "ok": false, "code", "message"}   and then Blender exits with status 3: the farm starts a fresh one.
# A tile ("of" 2 to 64, 0 <= "index" < "of") renders one region of the frame's grid (tile_grid) as a full-size frame
# with a border and no crop, so its pixels are bit-identical to the same region of the whole frame; the result's
# "tile" names the region {"index", "of", "x", "y", "width", "height", "frameWidth", "frameHeight"} in image pixels
# from the top-left. For a JPEG it adds {"format": "PNG", "encode": {"format": "JPEG", "quality", "colorMode"}}: the tile is
# lossless PNG and the stitch has Blender encode the JPEG once (encode_frame.py); likewise an OpenEXR with a lossy
# codec adds {"encode": {"format": "OPEN_EXR", "quality", "exrCodec", "colorDepth"}} and its tile is ZIP. What would not be exact (another engine, the compositor, denoising...) fails as tiles_not_exact.
# Cycles keeps its scene data between frames (persistent data), freed before another file is loaded.
# End of stdin ends Blender, and Blender dies with its parent (PR_SET_PDEATHSIG), so it never outlives the
# renderer. An exception this script does not catch exits with status 2 through --python-exit-code.
#
# Works with Blender 3.4 up to 5.x. The scene is untrusted: this script never enables Python auto-execution
# (scenes are opened with use_scripts=False) and never runs text blocks or anything else that came with the file.
import argparse
import ctypes
import json
import math
import os
import signal
import sys
import time
import traceback

import bpy

RESULT_PREFIX = "RENDER_FRAME_RESULT "
END_PREFIX = "RENDER_FRAME_END "
FAILURE_EXIT_STATUS = 3
PR_SET_PDEATHSIG = 1
MAX_FRAME = 1048574  # Blender's MAXFRAME
FORMATS = ("PNG", "JPEG", "OPEN_EXR", "TIFF")
MAX_TILES = 64
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
    # argparse would print usage and exit 2 with no word on what the farm got wrong.
    def error(self, message):
        raise RenderFailure("bad_argument", "render_frame.py: " + message)


def parse_args(argv):
    parser = ArgumentParser(prog="render_frame.py", add_help=False)
    parser.add_argument("--serve", action="store_true", required=True)
    parser.add_argument("--work-dir", required=True)
    args = parser.parse_args(argv)
    if not os.path.isabs(args.work_dir):
        raise RenderFailure("bad_argument", "--work-dir must be an absolute path, got %r" % args.work_dir)
    return args


def script_argv():
    if "--" not in sys.argv:
        raise RenderFailure("bad_argument", "render_frame.py needs its arguments after '--' on Blender's command line")
    return sys.argv[sys.argv.index("--") + 1:]


class Request:
    """One frame to render, read from a JSON line; every field checked as the farm's own arguments would be."""

    def __init__(self, line):
        try:
            fields = json.loads(line)
        except ValueError as error:
            raise RenderFailure("bad_argument", "render request is not JSON: %s" % error)
        if not isinstance(fields, dict):
            raise RenderFailure("bad_argument", "render request must be a JSON object")
        self.id = str(fields.get("id", ""))
        self.fields = fields
        self.scene = self.path("scene")
        self.reload = fields.get("reload") is True
        self.frame = self.whole("frame", -MAX_FRAME, MAX_FRAME)
        self.output = self.path("output")
        self.temp_dir = self.path("tempDir")
        self.format = self.choice("format", FORMATS)
        self.threads = self.whole("threads", 1, 1024)
        self.engine = self.choice("engine", sorted(ENGINE_CANDIDATES), optional=True)
        self.samples = self.whole("samples", 1, 1 << 24, optional=True)
        resolution = self.object("resolution")
        self.resolution_x = self.whole("x", 1, 65536, optional=True, within=resolution, label="resolution.x")
        self.resolution_y = self.whole("y", 1, 65536, optional=True, within=resolution, label="resolution.y")
        self.percentage = self.whole("percentage", 1, 100, optional=True, within=resolution, label="resolution.percentage")
        limits = self.object("limits")
        engines = limits.get("allowedEngines")
        if not isinstance(engines, list) or not engines or any(engine not in ENGINE_CANDIDATES for engine in engines):
            raise RenderFailure("bad_argument", "limits.allowedEngines must list engines out of %s, got %r" % (", ".join(sorted(ENGINE_CANDIDATES)), engines))
        self.allowed_engines = engines
        self.max_resolution = self.whole("maxResolution", 1, 1 << 20, within=limits, label="limits.maxResolution")
        self.max_samples = self.whole("maxSamples", 1, 1 << 30, within=limits, label="limits.maxSamples")
        self.tile = None
        if self.fields.get("tile") is not None:
            tile = self.object("tile")
            tile_count = self.whole("of", 2, MAX_TILES, within=tile, label="tile.of")
            self.tile = (self.whole("index", 0, tile_count - 1, within=tile, label="tile.index"), tile_count)

    def whole(self, name, low, high, optional=False, within=None, label=None):
        value = (self.fields if within is None else within).get(name)
        label = label or name
        if value is None and optional:
            return None
        if type(value) is not int or not low <= value <= high:
            raise RenderFailure("bad_argument", "%s must be a whole number between %d and %d, got %r" % (label, low, high, value))
        return value

    def path(self, name):
        value = self.fields.get(name)
        if not isinstance(value, str) or not os.path.isabs(value):
            raise RenderFailure("bad_argument", "%s must be an absolute path, got %r" % (name, value))
        return value

    def choice(self, name, choices, optional=False):
        value = self.fields.get(name)
        if value is None and optional:
            return None
        if value not in choices:
            raise RenderFailure("bad_argument", "%s must be one of %s, got %r" % (name, ", ".join(choices), value))
        return value

    def object(self, name):
        value = self.fields.get(name, {})
        if not isinstance(value, dict):
            raise RenderFailure("bad_argument", "%s must be a JSON object, got %r" % (name, value))
        return value


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


def check_limits(scene, request, what):
    """Fails with limit_exceeded unless the scene's engine, samples and output size are within the farm's limits."""
    engine = FARM_ENGINES.get(scene.render.engine)
    if engine not in request.allowed_engines:
        raise RenderFailure("limit_exceeded", "%s renders with engine %s, which this farm does not allow (allowed: %s)" % (what, engine or scene.render.engine, ", ".join(request.allowed_engines)))
    samples = render_samples(scene)
    if samples is not None and samples > request.max_samples:
        raise RenderFailure("limit_exceeded", "%s renders %d samples, over this farm's limit of %d" % (what, samples, request.max_samples))
    width, height = output_size(scene)
    if max(width, height) > request.max_resolution:
        raise RenderFailure("limit_exceeded", "%s renders %dx%d pixels, over this farm's limit of %d pixels per side" % (what, width, height, request.max_resolution))


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


def tile_boundary(part, parts, size):
    # round(part * size / parts), halves up, in integers: the same on every renderer.
    return (2 * part * size + parts) // (2 * parts)


def tile_grid(count, width, height):
    """The regions (x, y, width, height) in image pixels from the top-left of a frame split into `count` tiles, in
    row-major order from the top-left: r rows of count // r columns, the first count % r rows one more, for the r
    whose worst tile is closest to square (max(w/h, h/w)). A region may be empty when count is too large."""
    best_score, best = None, None
    for rows in range(1, count + 1):
        columns, extra = divmod(count, rows)
        regions = []
        for row in range(rows):
            top, bottom = tile_boundary(row, rows, height), tile_boundary(row + 1, rows, height)
            row_columns = columns + 1 if row < extra else columns
            for column in range(row_columns):
                left, right = tile_boundary(column, row_columns, width), tile_boundary(column + 1, row_columns, width)
                regions.append((left, top, right - left, bottom - top))
        score = max(max(w / h, h / w) if w and h else float("inf") for _, _, w, h in regions)
        if best is None or score < best_score:
            best_score, best = score, regions
    return best


def compositor_in_use(scene):
    """The compositor node tree the scene's render passes through, or None."""
    if not scene.render.use_compositing:
        return None
    # compositing_node_group from 5.0 (no use_nodes switch); node_tree, switched by use_nodes, up to 4.x.
    tree = getattr(scene, "compositing_node_group", None)
    if tree is None and getattr(scene, "use_nodes", False):
        tree = getattr(scene, "node_tree", None)
    return tree if tree is not None and len(tree.nodes) > 0 else None


def tile_refusals(scene):
    """Why tiles of the scene's frame would not be bit-identical to the whole frame, each with what to change."""
    render_settings = scene.render
    reasons = []
    if render_settings.engine != "CYCLES":
        engine = FARM_ENGINES.get(render_settings.engine, render_settings.engine)
        reasons.append("engine %s computes anti-aliasing and screen-space effects over the whole frame: render tiles with Cycles" % engine)
    if render_settings.use_border:
        reasons.append("the scene renders only its own Render Region: turn off Output Properties > Format > Render Region")
    tree = compositor_in_use(scene)
    if tree is not None:
        reasons.append('the compositor (node tree "%s") works on the whole frame: turn off Output Properties > Post Processing > Compositing' % tree.name)
    if render_settings.use_sequencer and sequencer_strips(scene):
        reasons.append("the sequencer's strips make the frame: turn off Output Properties > Post Processing > Sequencer")
    cycles = getattr(scene, "cycles", None)
    if render_settings.engine == "CYCLES" and cycles is not None:
        if cycles.use_denoising:
            reasons.append("Cycles denoises each render as a whole: turn off Render Properties > Sampling > Render > Denoise")
        if getattr(cycles, "time_limit", 0) > 0:
            reasons.append("a time limit renders as many samples as fit, different in every tile: set Render Properties > Sampling > Render > Time Limit to 0")
        if getattr(cycles, "use_guiding", False) and (cycles.use_surface_guiding or cycles.use_volume_guiding):
            reasons.append("path guiding learns where light comes from over the whole render, so each tile would learn otherwise: turn off Render Properties > Sampling > Path Guiding")
        if cycles.use_adaptive_sampling and auto_tiles_split(scene):
            # Each of Cycles' own tiles adapts its sampling with only 4 pixels of its neighbours (TileManager's overscan),
            # laid out from the rendered region's corner: a farm tile would lay them elsewhere.
            reasons.append("adaptive sampling with Cycles' own tiling of a frame larger than its tile size (%d px) samples each of those tiles on its own: turn off Render Properties > Performance > Memory > Use Tiling, or Render Properties > Sampling > Render > Noise Threshold" % cycles.tile_size)
    if render_settings.use_freestyle and any(layer.use and layer.use_freestyle for layer in scene.view_layers):
        # Measured on Blender 3.4: strokes differ at tile seams, and a tile without strokes fails.
        reasons.append("Freestyle draws its strokes over the whole frame: turn off Output Properties > Freestyle")
    if render_settings.use_stamp:
        reasons.append("metadata burned into the image is drawn per render: turn off Output Properties > Metadata > Burn Into Image")
    return reasons


def plan_tile(scene, request, where):
    """The tile's region, after refusing what would not be exact: tiles_not_exact says why and what to change."""
    index, count = request.tile
    reasons = tile_refusals(scene)
    if reasons:
        raise RenderFailure("tiles_not_exact", "%s cannot be rendered as %d exact tiles: %s; or render the frame whole" % (where, count, "; ".join(reasons)))
    width, height = output_size(scene)
    regions = tile_grid(count, width, height)
    smallest = min(regions, key=lambda region: region[2] * region[3])
    if smallest[2] < 1 or smallest[3] < 1:
        raise RenderFailure("tiles_not_exact", "%s renders %dx%d pixels, too few for %d tiles (one would be %dx%d pixels): use fewer tiles or a larger resolution" % (where, width, height, count, smallest[2], smallest[3]))
    x, y, tile_width, tile_height = regions[index]
    return {"index": index, "of": count, "x": x, "y": y, "width": tile_width, "height": tile_height, "frameWidth": width, "frameHeight": height, "margin": adaptive_filter_passes(scene)}


# OpenEXR codecs that change the pixels they store (PXR24 rounds 32-bit floats to 24 bits).
LOSSY_EXR_CODECS = ("DWAA", "DWAB", "B44", "B44A", "PXR24")
TILE_SETTINGS = (
    ("render", ("use_border", "use_crop_to_border", "border_min_x", "border_max_x", "border_min_y", "border_max_y")),
    ("image", ("file_format", "color_depth", "color_mode")),
)


# Cycles' adaptive sampling: every ADAPTIVE_STEP samples past the minimum, a pixel that has not converged makes its 8
# neighbours render on too (film_adaptive_sampling_filter_x/y), so each such pass carries a pixel's fate one pixel
# further. The step is fixed in Cycles (Integrator::get_adaptive_sampling) from 3.0 on.
ADAPTIVE_STEP = 16


def adaptive_filter_passes(scene):
    """How many of Cycles' adaptive-sampling filter passes can change the pixels of the scene's render: a pixel's value
    depends on pixels up to that many pixels away (0 without adaptive sampling)."""
    cycles = getattr(scene, "cycles", None)
    if scene.render.engine != "CYCLES" or cycles is None or not cycles.use_adaptive_sampling:
        return 0
    samples = render_samples(scene)
    if getattr(cycles, "use_sample_subset", False):
        # A subset renders fewer samples than this; counting from 0 over the whole range can only count more passes.
        samples = min(samples, cycles.sample_offset + cycles.sample_subset_length)
    threshold = cycles.adaptive_threshold or max(0.001, 1.0 / max(1, samples))
    min_samples = cycles.adaptive_min_samples
    if min_samples == 0 and threshold > 0:
        min_samples = math.ceil(16.0 / threshold ** 0.3)  # Cycles' automatic minimum
    # One lower than Cycles' own figure: its single-precision arithmetic may round the other way, and a pass counted
    # too many only widens the margin.
    min_samples = max(4, min_samples) - 1
    # A pass after the last sample changes no pixel: no sample follows it.
    return sum(1 for sample in range(samples - 1) if sample > min_samples and sample % ADAPTIVE_STEP == ADAPTIVE_STEP - 1)


def auto_tiles_split(scene):
    """Whether Cycles renders the whole frame in several tiles of its own (Performance > Memory > Use Tiling)."""
    cycles = scene.cycles
    width, height = output_size(scene)
    return getattr(cycles, "use_auto_tile", False) and max(width, height) > cycles.tile_size


def apply_tile(scene, tile):
    """Renders only the tile's region of a full-size frame (full-frame pixel coordinates: the same samples as the
    whole frame), reaching past its inner edges by the adaptive-sampling margin so that every pixel of the region
    meets the same neighbours as in the whole frame; a JPEG as lossless PNG. Returns what restores the scene for the
    next frame (it stays loaded)."""
    owners = {"render": scene.render, "image": scene.render.image_settings}
    saved = [(owners[owner], name, getattr(owners[owner], name)) for owner, names in TILE_SETTINGS for name in names]
    render_settings = scene.render
    frame_width, frame_height = tile["frameWidth"], tile["frameHeight"]
    margin = tile["margin"]
    left, top = max(0, tile["x"] - margin), max(0, tile["y"] - margin)
    right = min(frame_width, tile["x"] + tile["width"] + margin)
    bottom = min(frame_height, tile["y"] + tile["height"] + margin)
    render_settings.use_border = True
    render_settings.use_crop_to_border = False
    # Measured from the bottom-left; Blender truncates border * size to whole pixels: half a pixel in, it lands exactly.
    render_settings.border_min_x = 0.0 if left == 0 else (left + 0.5) / frame_width
    render_settings.border_max_x = 1.0 if right == frame_width else (right + 0.5) / frame_width
    render_settings.border_min_y = 0.0 if bottom == frame_height else (frame_height - bottom + 0.5) / frame_height
    render_settings.border_max_y = 1.0 if top == 0 else (frame_height - top + 0.5) / frame_height
    settings = render_settings.image_settings
    # A lossy format is encoded once, by Blender, after the stitch: tiles encoded and the frame again would lose twice.
    if settings.file_format == "JPEG":
        tile["format"] = "PNG"
        color_mode = settings.color_mode  # BW or RGB, as the JPEG would have it
        tile["encode"] = {"format": "JPEG", "quality": settings.quality, "colorMode": color_mode}
        settings.file_format = "PNG"
        settings.color_depth = "8"
        settings.color_mode = color_mode
    elif settings.file_format == "OPEN_EXR" and settings.exr_codec in LOSSY_EXR_CODECS:
        tile["encode"] = {"format": "OPEN_EXR", "quality": settings.quality, "exrCodec": settings.exr_codec, "colorDepth": settings.color_depth}
        saved.append((settings, "exr_codec", settings.exr_codec))
        settings.exr_codec = "ZIP"

    def restore():
        for owner, name, value in saved:
            setattr(owner, name, value)

    return restore


def render_result_image():
    # Found by type: a user image may also be named "Render Result".
    for image in bpy.data.images:
        if image.type == "RENDER_RESULT":
            return image
    raise RenderFailure("no_output", "Blender produced no render result")


# Modifiers whose result at a frame depends on the frames evaluated before it (simulation caches).
SIMULATION_MODIFIERS = {"CLOTH", "SOFT_BODY", "FLUID", "DYNAMIC_PAINT", "SMOKE", "FLUID_SIMULATION"}


def frame_dependent_state():
    """What makes a frame depend on the frames this Blender rendered before (an unbaked or partly baked simulation
    steps from the last frame it evaluated), or None. Such a scene is loaded again for every frame, as a fresh
    Blender would have it."""
    for scene in bpy.data.scenes:
        world = getattr(scene, "rigidbody_world", None)
        if world is not None and world.enabled:
            return 'the rigid body world of scene "%s"' % scene.name
    for obj in bpy.data.objects:
        for modifier in obj.modifiers:
            if modifier.type in SIMULATION_MODIFIERS:
                return 'the %s modifier "%s" of object "%s"' % (modifier.type.lower(), modifier.name, obj.name)
            if modifier.type == "PARTICLE_SYSTEM":
                particles = modifier.particle_system
                if particles.settings.type != "HAIR" or particles.use_hair_dynamics:
                    return 'the particle system "%s" of object "%s"' % (particles.name, obj.name)
    # Geometry nodes simulation zones (3.6+).
    for group in bpy.data.node_groups:
        if group.bl_idname == "GeometryNodeTree" and any(node.bl_idname == "GeometryNodeSimulationInput" for node in group.nodes):
            return 'the simulation zone in node group "%s"' % group.name
    return None


def free_persistent_data():
    # Blender finds a render's persistent data by scene name: another file's scene of the same name must not meet it.
    for scene in bpy.data.scenes:
        if scene.render.use_persistent_data:
            scene.render.use_persistent_data = False


class LoadedScene:
    """The .blend in memory, and whether its state may carry over to the next frame."""

    def __init__(self):
        self.path = None
        self.frame_dependent = None

    def ensure(self, request):
        """Loads the request's scene unless it is already loaded and may be reused; returns the seconds spent loading, or None."""
        if self.path == request.scene and not request.reload and self.frame_dependent is None:
            return None
        started = time.monotonic()
        # Forgotten first: a file that fails to load leaves Blender with no scene anyone asked for.
        self.path = None
        free_persistent_data()
        try:
            # load_ui: the scene Blender renders is the file's window's, as with `blender -b scene.blend`.
            # use_scripts=False: no auto-run text blocks, no Python drivers, whatever the command line said.
            bpy.ops.wm.open_mainfile(filepath=request.scene, load_ui=True, use_scripts=False)
        except RuntimeError as error:
            reason = str(error).strip().replace("Error: ", "", 1)
            raise RenderFailure("unreadable_scene", "Blender cannot read the scene %s: %s" % (request.scene, reason))
        if bpy.data.filepath != request.scene:
            raise RenderFailure("scene_not_loaded", "Blender did not load the scene %s (it has %r)" % (request.scene, bpy.data.filepath))
        self.path = request.scene
        self.frame_dependent = frame_dependent_state()
        if self.frame_dependent:
            print("render_frame.py: %s depends on the frames before: the scene is loaded again for every frame" % self.frame_dependent)
        return time.monotonic() - started


def render(request, loaded):
    load_seconds = loaded.ensure(request)
    blend_path = bpy.data.filepath
    scene = bpy.context.scene
    where = 'scene "%s" of %s' % (scene.name, blend_path)

    # Before the camera check: timeline markers can bind a different camera to each frame.
    scene.frame_set(request.frame)
    if scene.camera is None:
        raise RenderFailure("no_camera", "%s has no active camera at frame %d; set Scene Properties > Camera and save the file" % (where, request.frame))

    # Set on every frame, identically for every frame of one job: the farm reloads the scene when they change.
    engine_id = select_engine(scene, request.engine) if request.engine else scene.render.engine
    if request.samples is not None:
        set_samples(scene, engine_id, request.samples)
    render_settings = scene.render
    if request.resolution_x is not None:
        set_checked(render_settings, "resolution_x", request.resolution_x, "resolution.x")
    if request.resolution_y is not None:
        set_checked(render_settings, "resolution_y", request.resolution_y, "resolution.y")
    if request.percentage is not None:
        set_checked(render_settings, "resolution_percentage", request.percentage, "resolution.percentage")
    set_format(scene, request.format)
    configure_cycles(scene)
    if engine_id == "CYCLES":
        # Cycles keeps its scene (BVH, images, kernels) for the next frame: 2.5x faster per frame measured on a
        # 1.4M-face scene, the same pixels.
        render_settings.use_persistent_data = True
    render_settings.threads_mode = "FIXED"
    set_checked(render_settings, "threads", request.threads, "threads")

    # On what renders, not on what the job asked or the preflight read: the two can disagree.
    check_limits(scene, request, where)
    for other, via in scenes_rendered_with(scene):
        check_limits(other, request, 'scene "%s" (rendered by %s)' % (other.name, via))

    missing = missing_files()
    for path in missing:
        print("render_frame.py: warning: missing file %s" % path)
    muted = mute_file_outputs(scene)
    for name in muted:
        print("render_frame.py: warning: compositor File Output node %r muted: the farm writes only the frame" % name)
    tile = plan_tile(scene, request, where) if request.tile else None

    os.makedirs(os.path.dirname(request.output), exist_ok=True)
    if os.path.exists(request.output):
        os.remove(request.output)
    restore = apply_tile(scene, tile) if tile else None
    try:
        started = time.monotonic()
        with temp_dir_inside(request.temp_dir):
            try:
                status = bpy.ops.render.render(write_still=False)
            except RuntimeError as error:
                raise RenderFailure("render_failed", "Blender could not render frame %d of %s: %s" % (request.frame, where, error))
        if "FINISHED" not in status:
            raise RenderFailure("render_failed", "Blender did not finish rendering frame %d of %s (%s)" % (request.frame, where, ", ".join(sorted(status))))
        render_seconds = time.monotonic() - started

        image = render_result_image()
        # save_render applies the scene's view transform and output settings exactly as `blender -f` does.
        image.save_render(filepath=request.output, scene=scene)
    finally:
        if restore:
            restore()
    if not os.path.isfile(request.output) or os.path.getsize(request.output) == 0:
        raise RenderFailure("no_output", "Blender rendered frame %d of %s but wrote nothing to %s" % (request.frame, where, request.output))

    result = {
        "ok": True,
        "frame": request.frame,
        "output": request.output,
        "renderSeconds": round(render_seconds, 3),
        "engine": scene.render.engine,
        # X.Y.Z: version_string carries a release cycle on some builds ("5.2.2 LTS", "4.5.0 Alpha").
        "blenderVersion": "%d.%d.%d" % tuple(bpy.app.version),
        "missingFiles": missing,
        "mutedFileOutputs": muted,
        "sceneLoaded": load_seconds is not None,
        "loadSeconds": round(load_seconds or 0, 3),
        "sceneKept": not loaded.frame_dependent,
    }
    if tile:
        result["tile"] = tile
    return result


class temp_dir_inside:
    """Blender's session temp dir (Cycles tile buffers) inside `base` while rendering: setting the preference
    makes Blender drop its current session dir and create a new one there (BKE_tempdir_init)."""

    def __init__(self, base):
        self.base = base

    def __enter__(self):
        os.makedirs(self.base, exist_ok=True)
        bpy.context.preferences.filepaths.temporary_directory = self.base
        if not bpy.app.tempdir.startswith(os.path.join(self.base, "")):
            raise RenderFailure("bad_argument", "Blender would not put its temp dir in %s (it uses %s)" % (self.base, bpy.app.tempdir))

    def __exit__(self, *exc):
        # Back under the process's own temp dir, so the farm can remove the frame's.
        bpy.context.preferences.filepaths.temporary_directory = ""
        return False


def flush_all():
    sys.stdout.flush()
    sys.stderr.flush()
    # Blender's own C output (stdio) is buffered apart from Python's.
    try:
        ctypes.CDLL(None).fflush(None)
    except (AttributeError, OSError, TypeError):
        pass  # No C library to ask (Windows): Blender's lines may then land in the next frame's log.


def answer(request_id, result):
    """Ends a frame: its stderr marker, then its result line, each after everything the frame wrote before."""
    result = dict(result, id=request_id)
    flush_all()
    sys.stderr.write(END_PREFIX + request_id + "\n")
    sys.stderr.flush()
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def die_with_parent():
    # The kernel kills this Blender when the renderer that started it dies, mid-frame included (Linux).
    try:
        failed = ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0
    except (AttributeError, OSError, TypeError):
        failed = True
    if failed:
        print("render_frame.py: warning: no PR_SET_PDEATHSIG here: only the end of stdin ends this Blender")


def check_work_dir(work_dir):
    # The renderer points TMP at its work dir, which it cleans: a temp dir elsewhere would fill the disk unseen.
    if not bpy.app.tempdir.startswith(os.path.join(work_dir, "")):
        raise RenderFailure("bad_argument", "Blender's temp dir %s is outside the work dir %s: TMP is not honoured" % (bpy.app.tempdir, work_dir))


def serve():
    die_with_parent()
    loaded = LoadedScene()
    while True:
        line = sys.stdin.readline()
        received = time.time()
        if not line:
            return  # The renderer closed stdin (or died): nothing more to render.
        if not line.strip():
            continue
        request_id = ""
        try:
            request = Request(line)
            request_id = request.id
            result = dict(render(request, loaded), receivedAt=round(received, 3))
        except RenderFailure as failure:
            answer(request_id, {"ok": False, "code": failure.code, "message": failure.message})
            sys.exit(FAILURE_EXIT_STATUS)
        except Exception as error:
            traceback.print_exc()
            answer(request_id, {"ok": False, "code": "script_error", "message": "render_frame.py failed: %s: %s" % (type(error).__name__, error)})
            sys.exit(FAILURE_EXIT_STATUS)
        answer(request_id, result)


def main():
    try:
        check_work_dir(parse_args(script_argv()).work_dir)
    except RenderFailure as failure:
        answer("", {"ok": False, "code": failure.code, "message": failure.message})
        sys.exit(FAILURE_EXIT_STATUS)
    serve()


main()
