// A hostile test scene (tests/fixtures/make_hostile_scene.py): a renderable .blend carrying a registered
// auto-run text block and a Python driver, each writing its own marker file if it ever runs. Shared by the
// consumer-handler test and the local farm's test, so both probe the farm with the same file.
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BLENDER, runBlenderScript } from "./scenes";

const MAKE_HOSTILE_SCENE = path.join(__dirname, "..", "fixtures", "make_hostile_scene.py");

export interface HostileScene {
    blendPath: string;
    dir: string;
    /** Absolute paths the scene's code writes when it runs; absent until then. */
    markers: { textBlock: string; driver: string };
}

/**
 * Makes a fresh hostile scene in `dir` (default: a new temp dir). Not cached: the marker paths are baked into the
 * file, and a scene shared between concurrent test runs would let one run's control write another's markers.
 */
export async function makeHostileScene(
    dir: string = fs.mkdtempSync(path.join(os.tmpdir(), "render-farm-hostile-")),
): Promise<HostileScene> {
    const markerDir = path.join(dir, "markers");
    fs.mkdirSync(markerDir, { recursive: true });
    const scene: HostileScene = {
        blendPath: path.join(dir, "hostile.blend"),
        dir,
        markers: {
            textBlock: path.join(markerDir, "text-block-ran.txt"),
            driver: path.join(markerDir, "driver-ran.txt"),
        },
    };
    await runBlenderScript(MAKE_HOSTILE_SCENE, [
        "--out",
        scene.blendPath,
        "--text-block-marker",
        scene.markers.textBlock,
        "--driver-marker",
        scene.markers.driver,
    ]);
    clearMarkers(scene);
    return scene;
}

/** The markers that exist now, by name ("textBlock", "driver"). */
export function markersPresent(scene: HostileScene): string[] {
    return Object.entries(scene.markers)
        .filter(([, file]) => fs.existsSync(file))
        .map(([name]) => name);
}

export function clearMarkers(scene: HostileScene): void {
    for (const file of Object.values(scene.markers)) fs.rmSync(file, { force: true });
}

/**
 * The control: Blender's own render of one frame with auto-run on (`blender -b <file> --enable-autoexec -f N`).
 * Both markers must appear, or the probe proves nothing. Resolves with Blender's exit code and output.
 */
export function renderWithAutoexecEnabled(
    blendPath: string,
    frame: number,
    outputDir: string,
    blenderPath: string = BLENDER,
): Promise<{ exitCode: number | null; output: string }> {
    const args = [
        "-b",
        blendPath,
        "--factory-startup",
        "-noaudio",
        "--enable-autoexec",
        "-o",
        path.join(outputDir, "frame_####"),
        "-F",
        "PNG",
        "-f",
        String(frame),
    ];
    return new Promise((resolve, reject) => {
        const child = spawn(blenderPath, args, { stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
        child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
        const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
        child.on("error", reject);
        child.on("close", (exitCode) => {
            clearTimeout(timer);
            resolve({ exitCode, output });
        });
    });
}

/**
 * A stand-in Blender executable that runs the real one with --enable-autoexec wherever it is given
 * --disable-autoexec: a farm wired to it shows that render_frame.py itself keeps scene code off if the flag is lost.
 */
export function blenderIgnoringDisableAutoexec(dir: string, blenderPath: string = BLENDER): string {
    const file = path.join(dir, "blender-with-autoexec");
    fs.writeFileSync(
        file,
        [
            "#!/bin/sh",
            'for arg do shift; [ "$arg" = "--disable-autoexec" ] && arg="--enable-autoexec"; set -- "$@" "$arg"; done',
            `exec '${blenderPath.replace(/'/g, "'\\''")}' "$@"`,
            "",
        ].join("\n"),
        { mode: 0o755 },
    );
    return file;
}
