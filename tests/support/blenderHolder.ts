// A Node process holding a renderer's Blender (functions/renderer/blenderProcess.ts), for tests that SIGKILL it:
//   node -r ts-node/register/transpile-only tests/support/blenderHolder.ts <mode> <scene.blend> <workDir>
// mode "starting":  prints `BLENDER <pid>` as soon as Blender is spawned, before it read its first request;
//      "idle":      renders frame 1, prints `BLENDER <pid>` and waits with Blender idle;
//      "rendering": renders frame 1, then starts a frame of 100,000 samples and prints `BLENDER <pid>`.
import * as path from "path";
import { DEFAULT_RENDER_LIMITS } from "../../functions/renderer/settings";
import { BlenderProcess } from "../../functions/renderer/blenderProcess";
import { FrameRequest } from "../../functions/renderer/blender";

async function main(): Promise<void> {
    const [mode, scenePath, workDir] = process.argv.slice(2);
    const blender = new BlenderProcess({ workDir });
    const request = (frame: number, samples?: number): FrameRequest => ({
        scenePath,
        sceneVersion: "1",
        frame,
        outputPath: path.join(workDir, "frames", String(frame), "frame.png"),
        settings: samples === undefined ? { format: "PNG" } : { format: "PNG", samples },
        limits: DEFAULT_RENDER_LIMITS,
        threads: 1,
        tempDir: path.join(workDir, "frames", String(frame), "blender-temp"),
        deadlineMs: Date.now() + 600_000,
    });
    if (mode === "starting") {
        const rendering = blender.render(request(1));
        process.stdout.write(`BLENDER ${blender.pid}\n`);
        await rendering;
    } else {
        const first = await blender.render(request(1));
        if (!first.ok) throw new Error(`frame 1 failed: ${JSON.stringify(first.error)}\n${first.logTail}`);
        if (mode === "rendering") {
            // A settings change reloads the scene: Blender is busy from here on.
            void blender.render(request(2, 100_000));
        }
        process.stdout.write(`BLENDER ${blender.pid}\n`);
    }
    // Held until killed.
    setInterval(() => undefined, 60_000);
}

main().catch((error) => {
    process.stderr.write(`blenderHolder: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
});
