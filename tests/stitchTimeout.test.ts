// oiiotool's time for a stitch: it grows with what oiiotool reads (the frame's pixels times its tiles, every tile being
// the frame's full size), never below the 120 s a small frame always had, and never past what the invocation has left.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { StitchTile, stitchTiles, stitchTimeoutMs } from "../functions/renderer/tileStitch";
import { isFarmError } from "../functions/shared/errors";
import { run } from "./support/scenes";

const WIDTH = 64;
const HEIGHT = 32;

describe("the stitch's timeout: frame pixels times tiles, within the invocation's time", function () {
    let work: string;
    let tiles: StitchTile[];

    before(async function () {
        work = fs.mkdtempSync(path.join(os.tmpdir(), "stitch-timeout-"));
        tiles = [];
        for (const index of [0, 1]) {
            const file = path.join(work, `${index}.png`);
            await run("oiiotool", [
                "--pattern",
                `constant:color=${index},0.5,0.25`,
                `${WIDTH}x${HEIGHT}`,
                "3",
                "-o",
                file,
            ]);
            tiles.push({
                path: file,
                region: {
                    index,
                    of: 2,
                    x: index * 32,
                    y: 0,
                    width: 32,
                    height: HEIGHT,
                    frameWidth: WIDTH,
                    frameHeight: HEIGHT,
                },
            });
        }
    });

    it("at least 120 s; beyond that, proportional to the frame's pixels times its tiles", function () {
        assert.strictEqual(stitchTimeoutMs(101 * 67, 7), 120_000);
        assert.strictEqual(stitchTimeoutMs(1920 * 1080, 2), 120_000, "a small job's stitch keeps its 120 s");
        assert.ok(stitchTimeoutMs(7680 * 4320, 16) > 120_000, "an 8K frame in 16 tiles gets more");
        const tenMegapixels = 4000 * 2500;
        assert.strictEqual(
            stitchTimeoutMs(tenMegapixels, 64),
            4 * stitchTimeoutMs(tenMegapixels, 16),
            "4 times the tiles",
        );
        assert.strictEqual(stitchTimeoutMs(tenMegapixels, 16), stitchTimeoutMs(tenMegapixels / 4, 64), "or the pixels");
        assert.ok(stitchTimeoutMs(1920 * 1080, 64) > stitchTimeoutMs(1920 * 1080, 16));
    });

    it("an oiiotool that hangs is killed when the invocation's time is up, not after its own timeout", async function () {
        // Answers --info as oiiotool does (the stitch checks the tiles first), then hangs on the stitch itself.
        const hanging = path.join(work, "oiiotool-that-hangs");
        fs.writeFileSync(hanging, '#!/bin/sh\nif [ "$1" = "--info" ]; then exec oiiotool "$@"; fi\nexec sleep 600\n', {
            mode: 0o755,
        });
        const allowedMs = 3000;
        const outputPath = path.join(work, "out", "frame.png");
        fs.mkdirSync(path.dirname(outputPath), { recursive: true });
        await assert.rejects(
            stitchTiles({
                tiles,
                outputPath,
                format: "PNG",
                oiiotoolPath: hanging,
                deadlineMs: Date.now() + allowedMs,
            }),
            (error: unknown) => {
                assert.ok(isFarmError(error, "stitch_failed"), String(error));
                const killedAfter = /was killed after (\d+) ms/.exec((error as Error).message);
                assert.ok(killedAfter, (error as Error).message);
                assert.ok(
                    Number(killedAfter[1]) <= allowedMs,
                    `killed after ${killedAfter[1]} ms, allowed ${allowedMs}`,
                );
                return true;
            },
        );
        assert.deepStrictEqual(fs.readdirSync(path.dirname(outputPath)), [], "no frame, not even a partial one");
        // With no time left at all, oiiotool is not started.
        await assert.rejects(
            stitchTiles({ tiles, outputPath, format: "PNG", oiiotoolPath: hanging, deadlineMs: Date.now() - 1 }),
            /no time left/,
        );
    });

    it("the real oiiotool stitches the same tiles within the invocation's time", async function () {
        const outputPath = path.join(work, "real", "frame.png");
        fs.mkdirSync(path.dirname(outputPath), { recursive: true });
        await stitchTiles({ tiles, outputPath, format: "PNG", deadlineMs: Date.now() + 600_000 });
        assert.ok(fs.statSync(outputPath).size > 0);
    });
});
