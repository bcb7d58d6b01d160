// The local farm's settings (what `render-farm serve`, `render-farm worker` and the farm a command starts for itself
// take), each declared once: those that stand for a stack's setting take its range and default from FARM_SETTINGS.
// The farm's options (local/farm.ts, local/remoteWorkers.ts) and the CLI's flags (cli/main.ts) derive from these.
import {
    FARM_SETTINGS,
    LOCAL_FRAME_TIMEOUT,
    WholeNumberRange,
    wholeNumberProblem,
} from "../functions/shared/farmSettings";

/** Most frames one machine renders at once. */
const MAX_WORKERS = 64;

export const LOCAL_FARM_SETTINGS = {
    /** The job API's port; 0 takes any free one. */
    port: { min: 0, max: 65535, defaultValue: 8787 },
    /** Frames rendered at once (default: one per CPU); 0 leaves the rendering to `render-farm worker` processes. */
    workers: { min: 0, max: MAX_WORKERS },
    /** A `render-farm worker` process, or the farm a command starts for itself, renders at least one frame at once. */
    renderingWorkers: { min: 1, max: MAX_WORKERS },
    maxReceiveCount: FARM_SETTINGS.maxReceiveCount,
    failureBackoffSeconds: FARM_SETTINGS.failureBackoffSeconds,
    frameTimeoutSeconds: LOCAL_FRAME_TIMEOUT,
} as const satisfies Record<string, WholeNumberRange & { defaultValue?: number }>;

/** `value`, or the setting's default when it is undefined; throws naming `name` when it is not one the setting accepts. */
export function wholeNumberOption(
    name: string,
    value: number | undefined,
    setting: WholeNumberRange & { defaultValue?: number },
    fallback = setting.defaultValue,
): number {
    if (value === undefined) {
        if (fallback === undefined) throw new Error(`${name} has no default: give one`);
        return fallback;
    }
    const problem = wholeNumberProblem(value, setting);
    if (problem) throw new Error(`${name} ${problem}, got ${value}`);
    return value;
}
