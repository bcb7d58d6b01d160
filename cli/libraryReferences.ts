// What the scene needs on this disk, linked libraries included: each library found under the scene's directory is
// read with the farm's reader, and its own images, caches and libraries resolved next to it, as Blender does and as
// the job API's preflight does in the bucket.
import * as fs from "fs";
import * as path from "path";
import {
    BlendSummary,
    describeNeed,
    inspectBlendFile,
    isBlendFileError,
    referencesWithLibraries,
} from "../functions/blend";
import { isFarmError } from "../functions/shared/errors";
import { CliError, EXIT_USAGE, usageError } from "./errors";
import { LocalReference, localReference } from "./sceneFiles";

/** Every external file the scene and its linked libraries reference, found (or not) on this disk. */
export async function sceneReferences(summary: BlendSummary, sceneFile: string): Promise<LocalReference[]> {
    const sceneDir = path.dirname(path.resolve(sceneFile));
    try {
        const held = await referencesWithLibraries(path.basename(sceneFile), summary, async (key, reference) => {
            const file = path.join(sceneDir, ...key.split("/"));
            let isFile = false;
            try {
                isFile = fs.statSync(file).isFile();
            } catch {
                // Not on disk: reported as missing with the library's other references.
            }
            if (!isFile) return undefined;
            try {
                return await inspectBlendFile(file);
            } catch (error) {
                const why = isBlendFileError(error) ? error.message : String(error);
                throw new CliError(
                    `${sceneFile}: its library ${file} (needed by ${describeNeed(reference)}) is not a readable .blend file: ${why}`,
                    EXIT_USAGE,
                    "bad_library",
                );
            }
        });
        return held.map((reference) => localReference(reference, sceneDir));
    } catch (error) {
        if (isFarmError(error, "too_many_libraries"))
            throw usageError(`${sceneFile}: ${error.message}`, "too_many_libraries");
        throw error;
    }
}
