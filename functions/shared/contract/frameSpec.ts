// Frame specs: "1-250", "1-250x2", "1,5,10-20" to frame numbers and back.
import { Checked, refused } from "./apiErrors";
import { MAX_FRAME_NUMBER } from "./limits";

/**
 * Parses `"1-250"`, `"1-250x2"`, `"1,5,10-20"` into sorted, distinct frame numbers.
 * The count is computed before anything is expanded, so a huge range costs nothing.
 */
export function parseFrameSpec(spec: string, maxFrames: number): Checked<number[]> {
    const invalid = (message: string) => refused(400, "invalid_frames", message, "frames");
    if (spec.trim() === "") return invalid('frames is empty; use e.g. "1-250", "1-250x2" or "1,5,10-20"');
    const ranges: { start: number; end: number; step: number }[] = [];
    let upperBound = 0;
    for (const rawPart of spec.split(",")) {
        const part = rawPart.trim();
        const match = /^(\d{1,7})(?:-(\d{1,7})(?:x(\d{1,7}))?)?$/.exec(part);
        if (!match) return invalid(`frames part "${part}" is not N, A-B or A-BxS with whole numbers >= 0`);
        const start = Number(match[1]);
        const end = match[2] === undefined ? start : Number(match[2]);
        const step = match[3] === undefined ? 1 : Number(match[3]);
        if (start > MAX_FRAME_NUMBER || end > MAX_FRAME_NUMBER)
            return invalid(`frames part "${part}" is past Blender's last frame ${MAX_FRAME_NUMBER}`);
        if (end < start) return invalid(`frames part "${part}" is reversed: ${start} is after ${end}`);
        if (step < 1) return invalid(`frames part "${part}" has step 0; the step must be at least 1`);
        ranges.push({ start, end, step });
        upperBound += Math.floor((end - start) / step) + 1;
        if (upperBound > maxFrames) break;
    }
    if (upperBound > maxFrames) {
        return refused(
            413,
            "too_many_frames",
            `frames "${spec}" asks for more than this farm's limit of ${maxFrames} frames per job`,
            "frames",
        );
    }
    const frames = new Set<number>();
    for (const { start, end, step } of ranges) {
        for (let frame = start; frame <= end; frame += step) frames.add(frame);
    }
    return { ok: true, value: [...frames].sort((a, b) => a - b) };
}

/** The canonical spec of a frame list, e.g. [1,2,3,7] -> "1-3,7". */
export function formatFrameSpec(frames: number[]): string {
    const parts: string[] = [];
    let index = 0;
    while (index < frames.length) {
        let last = index;
        while (last + 1 < frames.length && frames[last + 1] === frames[last] + 1) last++;
        parts.push(last === index ? `${frames[index]}` : `${frames[index]}-${frames[last]}`);
        index = last + 1;
    }
    return parts.join(",");
}
