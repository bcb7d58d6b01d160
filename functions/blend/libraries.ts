// Following linked libraries: a linked .blend's own images, caches and libraries are files the scene needs too,
// and Blender resolves their "//" paths next to that library, not next to the scene. A saved file names only the
// libraries it links directly, so the others are found only by reading each library in turn.
import { mapWithConcurrency } from "../shared/concurrency";
import { objectKeyProblem } from "../shared/contract";
import { farmError } from "../shared/errors";
import { BlendReference, externalReferences, resolveReferenceKey, ResolvedReference } from "./references";
import { BlendSummary } from "./summary";

/** How far the job API and the CLI follow libraries: a chain this deep, this many library files in all. */
export const LIBRARY_LIMITS = { maxDepth: 8, maxLibraries: 64 };
/** Libraries of one level read at once (each streams through the reader). */
const LIBRARY_READ_CONCURRENCY = 4;

export interface HeldReference extends BlendReference {
    /** Key of the .blend that holds the reference: the scene's, or a linked library's. */
    holder: string;
    /** Libraries between the scene and the holder: 0 for the scene's own references. */
    depth: number;
    /** The path resolved against the holder's key. */
    resolved: ResolvedReference;
}

/**
 * The scene's external references and, recursively, those of every library it links, each resolved against the
 * key of the file that holds it. `openLibrary` reads a library by key: its summary, or undefined when it is not
 * there (the caller reports it missing). Each library is read once (a cycle ends there); a chain deeper than
 * maxDepth or more than maxLibraries files throws a FarmError "too_many_libraries".
 */
export async function referencesWithLibraries(
    sceneKey: string,
    summary: BlendSummary,
    openLibrary: (key: string, neededBy: HeldReference) => Promise<BlendSummary | undefined>,
    limits: { maxDepth: number; maxLibraries: number } = LIBRARY_LIMITS,
): Promise<HeldReference[]> {
    const held: HeldReference[] = [];
    const opened = new Set<string>([sceneKey]);
    let level: { key: string; summary: BlendSummary }[] = [{ key: sceneKey, summary }];
    for (let depth = 0; level.length > 0; depth++) {
        const next: HeldReference[] = [];
        for (const file of level) {
            for (const reference of externalReferences(file.summary)) {
                const entry: HeldReference = {
                    ...reference,
                    holder: file.key,
                    depth,
                    resolved: resolveReferenceKey(file.key, reference.filepath),
                };
                held.push(entry);
                // A key the farm cannot store is never opened: the callers warn about it with the others.
                if (
                    entry.kind === "library" &&
                    entry.resolved.ok &&
                    objectKeyProblem(entry.resolved.key) === undefined &&
                    !opened.has(entry.resolved.key)
                ) {
                    opened.add(entry.resolved.key);
                    next.push(entry);
                }
            }
        }
        if (next.length === 0) break;
        if (depth + 1 > limits.maxDepth)
            throw farmError(
                "too_many_libraries",
                `linked libraries go deeper than ${limits.maxDepth} levels (${next[0].holder} links ${next[0].resolved.ok ? next[0].resolved.key : next[0].filepath}); the farm follows at most ${limits.maxDepth}: make the scene link fewer levels, or make the libraries local (File > External Data > Make Local)`,
            );
        if (opened.size - 1 > limits.maxLibraries)
            throw farmError(
                "too_many_libraries",
                `the scene links more than ${limits.maxLibraries} library files (directly or through other libraries); the farm follows at most ${limits.maxLibraries}`,
            );
        const read = await mapWithConcurrency(next, LIBRARY_READ_CONCURRENCY, async (entry) => {
            const key = (entry.resolved as { key: string }).key;
            return { key, summary: await openLibrary(key, entry) };
        });
        level = read.filter((file): file is { key: string; summary: BlendSummary } => file.summary !== undefined);
    }
    return held;
}

/** What needs a file, as errors name it: `image "wood" (tile 1002) in library lib/props.blend`. */
export function describeNeed(reference: BlendReference & { holder?: string; depth?: number }): string {
    const tile = reference.tile === undefined ? "" : ` (tile ${reference.tile})`;
    const library = reference.depth ? ` in library ${reference.holder}` : "";
    return `${reference.kind} "${reference.name}"${tile}${library}`;
}
