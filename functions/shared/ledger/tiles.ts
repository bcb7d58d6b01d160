// A tiled frame's working objects under jobs/<jobId>/tiles/<frame>/: the tiles' images beside their records, and the
// stitch marker that elects the one renderer that stitches the frame.
import * as crypto from "crypto";
import { frameTilesPrefix, stitchMarkerKey, tileImageKey, tileRecordKey } from "../contract/ledgerKeys";
import { Format } from "../contract/formats";
import { farmError } from "../errors";
import { DeleteFailure, LedgerStore } from "./store";

/** Who stitches a frame, and until when its invocation may still be running. */
interface StitchMarker {
    owner: string;
    until: string;
}

export interface Tiles {
    /** Tile indices of the frame whose record and image are both in the bucket (one listing). */
    tilesOnS3(jobId: string, frame: number, of: number, format: Format): Promise<Set<number>>;
    /**
     * Takes the frame's stitch marker: written if absent, or over a marker whose holder's invocation is over (until
     * `untilMs`, this one's end). Answers "mine", or until when (ms) another holds it.
     */
    claimStitch(jobId: string, frame: number, untilMs: number): Promise<"mine" | number>;
    /** Gives the marker up after a failed stitch, so the tile message's next delivery stitches at once. */
    releaseStitch(jobId: string, frame: number): Promise<void>;
    /** Deletes the images of a stitched frame's tiles; answers those S3 could not delete. */
    deleteTileImages(jobId: string, frame: number, of: number, format: Format): Promise<DeleteFailure[]>;
    /** Deletes the tile records and images of `frames`, so that their tiles render again; throws if any stays. */
    deleteTiles(jobId: string, frames: readonly number[], of: number, format: Format): Promise<void>;
}

function tileImageKeys(jobId: string, frame: number, of: number, format: Format): string[] {
    return Array.from({ length: of }, (_, tile) => tileImageKey(jobId, frame, tile, format));
}

export function tilesIn(store: LedgerStore): Tiles {
    return {
        async tilesOnS3(jobId, frame, of, format) {
            const keys = new Set(await store.list(frameTilesPrefix(jobId, frame)));
            const done = new Set<number>();
            for (let tile = 0; tile < of; tile++)
                if (keys.has(tileImageKey(jobId, frame, tile, format)) && keys.has(tileRecordKey(jobId, frame, tile)))
                    done.add(tile);
            return done;
        },
        async claimStitch(jobId, frame, untilMs) {
            const key = stitchMarkerKey(jobId, frame);
            const marker: StitchMarker = { owner: crypto.randomUUID(), until: new Date(untilMs).toISOString() };
            if ((await store.put(key, marker, { ifAbsent: true })).written) return "mine";
            // Absent now (403 without a listing grant): released by a holder whose stitch failed; its message comes back.
            const held = await store.get(key, { forbiddenMeansAbsent: true });
            if (!held) return Date.now();
            const until = Date.parse((held.value as StitchMarker)?.until ?? "");
            if (Number.isFinite(until) && until > Date.now()) return until;
            const taken = await store.put(key, marker, { ifMatch: held.etag });
            return taken.written ? "mine" : Date.now();
        },
        releaseStitch(jobId, frame) {
            return store.deleteKey(stitchMarkerKey(jobId, frame));
        },
        deleteTileImages(jobId, frame, of, format) {
            return store.deleteKeys(tileImageKeys(jobId, frame, of, format));
        },
        async deleteTiles(jobId, frames, of, format) {
            const keys = frames.flatMap((frame) =>
                Array.from({ length: of }, (_, tile) => [
                    tileRecordKey(jobId, frame, tile),
                    tileImageKey(jobId, frame, tile, format),
                ]).flat(),
            );
            const failures = await store.deleteKeys(keys);
            if (failures.length > 0)
                throw farmError(
                    "storage_error",
                    `DeleteObjects ${store.where(failures[0].key)} failed: ${failures[0].code}: ${failures[0].message} (${failures.length} of ${keys.length} tile objects not deleted); retry again`,
                    503,
                );
        },
    };
}
