// The farm's settings, each declared once: its stack config key (`render-farm:<key>`), type, range or choices, default
// and description, and the environment variable through which a stack hands it to its functions. The stack's config
// (config.ts), Pulumi.yaml and the README's table (scripts/configDocs.ts), the components' args, the functions'
// environment (functionEnvironment.ts), the local farm and the CLI's flags all derive from it. Plain constants and
// functions: the job API ships through Pulumi's closure serializer (functions/README.md).
import { ENGINES, Engine } from "./contract";

/** The functions a stack hands settings to, through their environment. */
export type FunctionName = "jobApi" | "renderer";

/** A whole-number range. */
export interface WholeNumberRange {
    min: number;
    max: number;
}

interface DeclaredSetting {
    /** What it does: the README's table and Pulumi.yaml show it (Markdown backticks allowed). */
    description: string;
    /** The environment variable a stack sets from it, and the functions that read it there. */
    environment?: { variable: string; readBy: readonly FunctionName[] };
}

/**
 * A whole number within its range (and, with `oneOf`, one of those). `defaultValue`, not `default`: Pulumi's closure
 * serializer takes an object with a `default` property for an `import *` result and fails on a number there.
 */
export interface WholeNumberSetting extends DeclaredSetting, WholeNumberRange {
    kind: "wholeNumber";
    defaultValue: number;
    /** Shown after the range: MB, s, days. */
    unit?: string;
    oneOf?: readonly number[];
}

export interface SwitchSetting extends DeclaredSetting {
    kind: "switch";
    defaultValue: boolean;
}

export interface ChoiceSetting extends DeclaredSetting {
    kind: "choice";
    choices: readonly string[];
    defaultValue: string;
}

export interface VersionSetting extends DeclaredSetting {
    kind: "version";
    /** A regular expression's source (a RegExp is no plain constant for the serializer). */
    pattern: string;
    /** The pattern as a reader sees it. */
    format: string;
    defaultValue: string;
}

export interface EnginesSetting extends DeclaredSetting {
    kind: "engines";
    defaultValue: readonly Engine[];
}

export type FarmSetting = WholeNumberSetting | SwitchSetting | ChoiceSetting | VersionSetting | EnginesSetting;

/** The values CloudWatch Logs accepts for a log group's retention, in days. */
const LOG_RETENTION_DAYS = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Keyed by the stack config key; in the order the README's table lists them. */
export const FARM_SETTINGS = {
    blenderVersion: {
        kind: "version",
        pattern: "^\\d+\\.\\d+\\.\\d+$",
        format: "X.Y.Z",
        defaultValue: "4.5.0",
        description: "official Blender build baked into the renderer image",
    },
    rendererMemory: {
        kind: "wholeNumber",
        min: 2048,
        max: 10240,
        defaultValue: 10240,
        unit: "MB",
        description:
            "renderer memory; 10240 MB (Lambda's maximum) gives 6 vCPU, below 2048 MB Blender runs out on ordinary scenes",
    },
    rendererTimeout: {
        kind: "wholeNumber",
        min: 60,
        max: 900,
        defaultValue: 900,
        unit: "s",
        description: "longest a frame may render (900 s is Lambda's maximum)",
        // The job API reports it, for a client to tell how long a job may take.
        environment: { variable: "RENDER_TIMEOUT_SECONDS", readBy: ["jobApi"] },
    },
    rendererEphemeralStorage: {
        kind: "wholeNumber",
        min: 512,
        max: 10240,
        defaultValue: 10240,
        unit: "MB",
        description:
            "`/tmp` for scenes, assets and the frame; jobs whose files need more than ¾ of it (at least 256 MiB kept) get `413`",
        environment: { variable: "RENDERER_EPHEMERAL_STORAGE_MB", readBy: ["jobApi"] },
    },
    maxConcurrency: {
        kind: "wholeNumber",
        min: 2,
        max: 1000,
        defaultValue: 100,
        description: "most frames rendering at once (the event source mapping's maximum concurrency)",
        environment: { variable: "MAX_CONCURRENCY", readBy: ["jobApi"] },
    },
    maxReceiveCount: {
        kind: "wholeNumber",
        min: 1,
        max: 10,
        defaultValue: 3,
        description: "attempts per frame before it goes to the dead-letter queue",
        environment: { variable: "MAX_RECEIVE_COUNT", readBy: ["jobApi", "renderer"] },
    },
    failureBackoffSeconds: {
        kind: "wholeNumber",
        min: 0,
        max: 900,
        defaultValue: 10,
        unit: "s",
        description: "delay before a failed frame's retry (doubles per attempt, at most 300 s)",
        environment: { variable: "FAILURE_BACKOFF_SECONDS", readBy: ["jobApi", "renderer"] },
    },
    maxFramesPerJob: {
        kind: "wholeNumber",
        min: 1,
        max: 100000,
        defaultValue: 10000,
        description: "larger jobs get `413`",
        environment: { variable: "MAX_FRAMES_PER_JOB", readBy: ["jobApi"] },
    },
    maxResolution: {
        kind: "wholeNumber",
        min: 16,
        max: 16384,
        defaultValue: 8192,
        unit: "px",
        description:
            "largest rendered width or height a job may ask for, after the percentage (the renderer checks it again in Blender)",
        environment: { variable: "MAX_RESOLUTION", readBy: ["jobApi", "renderer"] },
    },
    allowedEngines: {
        kind: "engines",
        defaultValue: ENGINES,
        description: "engines a job may ask for",
        environment: { variable: "ALLOWED_ENGINES", readBy: ["jobApi", "renderer"] },
    },
    renderRetentionDays: {
        kind: "wholeNumber",
        min: 1,
        max: 3650,
        defaultValue: 30,
        unit: "days",
        description: "frames and job records expire after this",
    },
    forceDestroy: {
        kind: "switch",
        defaultValue: false,
        description: "`pulumi destroy` empties the buckets (the dev stack sets it)",
    },
    preflight: {
        kind: "switch",
        defaultValue: true,
        description:
            "the job API reads each .blend before queueing: the scene's own frame range, no camera → `400`, referenced files missing from S3 → `422`",
        environment: { variable: "PREFLIGHT", readBy: ["jobApi"] },
    },
    apiAuth: {
        kind: "choice",
        choices: ["iam", "none"],
        defaultValue: "iam",
        description: "`iam`: every request must be SigV4-signed; `none`: anyone with the URL may use the API",
    },
    apiRateLimit: {
        kind: "wholeNumber",
        min: 1,
        max: 10000,
        defaultValue: 20,
        description: "API Gateway throttling: steady requests per second",
    },
    apiBurstLimit: {
        kind: "wholeNumber",
        min: 1,
        max: 5000,
        defaultValue: 50,
        description: "API Gateway throttling: burst of requests",
    },
    logRetentionDays: {
        kind: "wholeNumber",
        min: LOG_RETENTION_DAYS[0],
        max: LOG_RETENTION_DAYS[LOG_RETENTION_DAYS.length - 1],
        oneOf: LOG_RETENTION_DAYS,
        defaultValue: 14,
        unit: "days",
        description: "retention of function and access logs (one of CloudWatch's values)",
    },
    imagesToKeep: {
        kind: "wholeNumber",
        min: 1,
        max: 100,
        defaultValue: 5,
        description: "renderer images kept in ECR",
    },
} as const satisfies Record<string, FarmSetting>;

export type FarmSettingKey = keyof typeof FARM_SETTINGS;

/** What a setting of this declaration holds. */
export type SettingValue<S extends FarmSetting> = S extends WholeNumberSetting
    ? number
    : S extends SwitchSetting
      ? boolean
      : S extends { kind: "choice"; choices: readonly (infer Choice)[] }
        ? Choice
        : S extends EnginesSetting
          ? Engine[]
          : string;

/** Every setting's value: what a stack's config reads (config.ts), and what the components are built from. */
export type FarmSettings = { -readonly [K in FarmSettingKey]: SettingValue<(typeof FARM_SETTINGS)[K]> };

/** The settings a function reads from its environment. */
export type SettingsReadBy<F extends FunctionName> = {
    [K in FarmSettingKey]: (typeof FARM_SETTINGS)[K] extends { environment: { readBy: readonly (infer Reader)[] } }
        ? F extends Reader
            ? K
            : never
        : never;
}[FarmSettingKey];

/** The settings that travel through an environment variable. */
export type EnvironmentSettingKey = SettingsReadBy<FunctionName>;

/** Every setting at its default: a stack that sets nothing, and the local farm. */
export const FARM_DEFAULTS: FarmSettings = defaultsOf();

function defaultsOf(): FarmSettings {
    const defaults: Record<string, unknown> = {};
    for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS)) {
        const value = setting.defaultValue;
        defaults[key] = Array.isArray(value) ? [...value] : value;
    }
    return defaults as FarmSettings;
}

/**
 * A frame's timeout where no Lambda bounds it (the local farm, a renderer without a Lambda context): at most the
 * stack's, but as short as a second, for quick checks and tests.
 */
export const LOCAL_FRAME_TIMEOUT = {
    min: 1,
    max: FARM_SETTINGS.rendererTimeout.max,
    defaultValue: FARM_SETTINGS.rendererTimeout.defaultValue,
} as const;

/** Why `value` is not a whole number `setting` accepts (its range, and its list when it has one), or undefined. */
export function wholeNumberProblem(
    value: number,
    setting: WholeNumberRange & { oneOf?: readonly number[] },
): string | undefined {
    if (!Number.isInteger(value) || value < setting.min || value > setting.max)
        return `must be a whole number from ${setting.min} to ${setting.max}`;
    if (setting.oneOf && !setting.oneOf.includes(value)) return `must be one of ${setting.oneOf.join(", ")}`;
    return undefined;
}
