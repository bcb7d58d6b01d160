// Probe frames: a job may ask for only a few of its frames first (JobRequest.probe), to measure what the whole job will
// cost before paying for it (`render-farm estimate`). They are the first of the job's interleaved order (first, last,
// middle, then by bisection), so a few frames span the shot. The same request again asks for more probe frames, or,
// without probe, for the rest of the job: the frames already rendered are kept.
import { JobManifest } from "../shared/contract";
import { interleavedOrder } from "../shared/frameOrder";

/** The job's first `count` frames in interleaved order, ascending. */
export function probeFramesOf(jobFrames: readonly number[], count: number): number[] {
    return interleavedOrder(jobFrames)
        .slice(0, count)
        .sort((a, b) => a - b);
}

/** A new job's manifest once it asks for `probe` frames only: `frames` becomes those. */
export function asProbe(manifest: JobManifest, probe: number | undefined): void {
    if (probe === undefined) return;
    manifest.probe = { count: probe, jobFrames: manifest.frames };
    // The request as the whole job's: the probe lives in manifest.probe, and leaves it when the rest is asked for.
    delete manifest.request.probe;
    manifest.frames = probeFramesOf(manifest.frames, probe);
}

/**
 * A probe job's manifest once a resubmit asks for `probe` frames (undefined: the whole job), and the frames that adds;
 * undefined when the manifest already covers them (not a probe job, or no more frames than before).
 */
export function widenProbe(
    manifest: JobManifest,
    probe: number | undefined,
): { manifest: JobManifest; added: number[] } | undefined {
    if (!manifest.probe) return undefined;
    const { jobFrames } = manifest.probe;
    const wanted = probe === undefined ? jobFrames : probeFramesOf(jobFrames, probe);
    const have = new Set(manifest.frames);
    const added = wanted.filter((frame) => !have.has(frame));
    if (added.length === 0) return undefined;
    const frames = [...manifest.frames, ...added].sort((a, b) => a - b);
    const widened: JobManifest = { ...manifest, frames };
    if (probe === undefined || frames.length === jobFrames.length) delete widened.probe;
    else widened.probe = { count: Math.max(probe, manifest.probe.count), jobFrames };
    return { manifest: widened, added };
}
