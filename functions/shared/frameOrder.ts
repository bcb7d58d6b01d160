// The order a job's frames are queued in: the first, the last and the middle frame first, then the gaps filled by
// bisection (the quarters, the eighths, …). A scene that breaks somewhere in its range shows it within the first
// frames rendered, and fail-fast (functions/renderer/jobControl.ts) stops the job before it spends every frame's
// attempts; the frames seen first also span the whole shot.

/** `frames` (ascending) in interleaved order: first, last, middle, then each gap's middle, breadth first. */
export function interleavedOrder(frames: readonly number[]): number[] {
    const count = frames.length;
    if (count <= 2) return [...frames];
    const order: number[] = [frames[0], frames[count - 1]];
    // Gaps between two frames already queued, as index pairs (exclusive), in the order they were made.
    const gaps: number[] = [0, count - 1];
    for (let at = 0; at < gaps.length; at += 2) {
        const low = gaps[at];
        const high = gaps[at + 1];
        if (high - low < 2) continue;
        const middle = (low + high) >>> 1;
        order.push(frames[middle]);
        gaps.push(low, middle, middle, high);
    }
    return order;
}
