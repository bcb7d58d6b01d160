// The environment a stack sets on its functions (components/) and the functions read at cold start: where their
// buckets and queues are, and the settings each one reads (FARM_SETTINGS says which, and under which name).
// Plain constants and functions: the job API ships through Pulumi's closure serializer (functions/README.md).
import { ENGINES, Engine } from "./contract";
import { farmError } from "./errors";
import {
    EnvironmentSettingKey,
    FARM_SETTINGS,
    FarmSetting,
    FarmSettings,
    FunctionName,
    SettingsReadBy,
    WholeNumberRange,
    wholeNumberProblem,
} from "./farmSettings";
import { stackStaleAfterSeconds } from "./farmTiming";

/** The variables that carry no stack setting: what the stack made, what follows from settings, the renderer's own. */
export const ENVIRONMENT = {
    scenesBucket: "SCENES_BUCKET",
    rendersBucket: "RENDERS_BUCKET",
    frameQueueUrl: "FRAME_QUEUE_URL",
    /** A retry removes the job's old messages from it. */
    deadLetterQueueUrl: "DEAD_LETTER_QUEUE_URL",
    /** Derived from the queue's visibility timeout (stackStaleAfterSeconds). */
    staleAfterSeconds: "STALE_AFTER_SECONDS",
    /** The renderer's. */
    blenderPath: "BLENDER_PATH",
    workDir: "RENDER_WORK_DIR",
    threads: "RENDER_THREADS",
    /** Most samples a frame may use (default: the contract's MAX_SAMPLES; no stack setting). */
    maxSamples: "MAX_SAMPLES",
    /** Blender is started afresh after a frame that leaves it using more memory than this (default: half the memory). */
    blenderMemoryLimitMb: "BLENDER_MEMORY_LIMIT_MB",
    /** Blender is killed mid-frame, the frame failing with out_of_memory, past this (default: the memory less 512 MB). */
    blenderMemoryHardLimitMb: "BLENDER_MEMORY_HARD_LIMIT_MB",
} as const;

/** The environment variable that carries a setting. */
export function settingVariable(key: EnvironmentSettingKey): string {
    return FARM_SETTINGS[key].environment.variable;
}

// ---- writing an environment (the components, the local farm) ----------------------------------

/** Where a function's buckets and queue are; T is a string, or a Pulumi Output of one in components/. */
export interface FunctionResources<T> {
    scenesBucket: T;
    rendersBucket: T;
    frameQueueUrl: T;
}

/** The variables that carry these settings, as the functions read them back. */
export function settingVariables(settings: Partial<Pick<FarmSettings, EnvironmentSettingKey>>): Record<string, string> {
    const variables: Record<string, string> = {};
    for (const [key, value] of Object.entries(settings)) {
        const setting: FarmSetting = FARM_SETTINGS[key as EnvironmentSettingKey];
        if (value === undefined || !setting.environment) continue;
        variables[setting.environment.variable] = Array.isArray(value)
            ? value.join(",")
            : typeof value === "boolean"
              ? value
                  ? "on"
                  : "off"
              : String(value);
    }
    return variables;
}

/** The settings `reader` reads, taken from all of them. */
function settingsReadBy<F extends FunctionName>(
    reader: F,
    settings: Pick<FarmSettings, SettingsReadBy<F>>,
): Partial<Pick<FarmSettings, EnvironmentSettingKey>> {
    const picked: Record<string, unknown> = {};
    for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS)) {
        if (setting.environment?.readBy.includes(reader)) picked[key] = settings[key as SettingsReadBy<F>];
    }
    return picked;
}

/** The variables that say where a function's buckets and queue are. */
export function resourceVariables<T>(resources: FunctionResources<T>): Record<string, T> {
    return {
        [ENVIRONMENT.scenesBucket]: resources.scenesBucket,
        [ENVIRONMENT.rendersBucket]: resources.rendersBucket,
        [ENVIRONMENT.frameQueueUrl]: resources.frameQueueUrl,
    };
}

/** The job API's environment: its resources, the settings it reads, and the stale threshold they make. */
export function jobApiEnvironment<T>(
    resources: FunctionResources<T> & { deadLetterQueueUrl: T },
    settings: Pick<FarmSettings, SettingsReadBy<"jobApi">>,
): Record<string, T | string> {
    return {
        ...resourceVariables(resources),
        [ENVIRONMENT.deadLetterQueueUrl]: resources.deadLetterQueueUrl,
        ...settingVariables(settingsReadBy("jobApi", settings)),
        [ENVIRONMENT.staleAfterSeconds]: String(stackStaleAfterSeconds(settings)),
    };
}

/** The renderer's environment from the stack (Lambda adds AWS_LAMBDA_FUNCTION_MEMORY_SIZE). */
export function rendererEnvironment<T>(
    resources: FunctionResources<T>,
    settings: Pick<FarmSettings, SettingsReadBy<"renderer">>,
): Record<string, T | string> {
    return { ...resourceVariables(resources), ...settingVariables(settingsReadBy("renderer", settings)) };
}

// ---- reading an environment (at a function's cold start) --------------------------------------

export type Environment = Record<string, string | undefined>;

/** A setting from its variable, or its default when unset; throws naming the variable when the value is not one it accepts. */
export function settingFromEnvironment<K extends EnvironmentSettingKey>(env: Environment, key: K): FarmSettings[K] {
    const setting: FarmSetting = FARM_SETTINGS[key];
    const name = settingVariable(key);
    switch (setting.kind) {
        case "wholeNumber":
            return wholeNumberVariable(env, name, setting, setting.defaultValue) as FarmSettings[K];
        case "switch":
            return switchVariable(env, name, setting.defaultValue) as FarmSettings[K];
        case "engines":
            return enginesVariable(env, name) as FarmSettings[K];
        default:
            throw new Error(`${key} is not read from an environment`);
    }
}

/** The variables' values; throws naming every one that is missing or empty. */
export function requiredVariables<K extends string>(
    env: Environment,
    names: Record<K, string>,
    who: string,
): Record<K, string> {
    const missing = Object.values<string>(names).filter((name) => !env[name]);
    if (missing.length > 0)
        throw farmError("invalid_environment", `${who} needs the environment variable(s) ${missing.join(", ")}`);
    const values = {} as Record<K, string>;
    for (const [key, name] of Object.entries<string>(names)) values[key as K] = env[name] as string;
    return values;
}

/** The resources every function needs; throws (naming them) when any is missing. */
export function resourcesFromEnvironment(env: Environment, who: string): FunctionResources<string> {
    return requiredVariables(
        env,
        {
            scenesBucket: ENVIRONMENT.scenesBucket,
            rendersBucket: ENVIRONMENT.rendersBucket,
            frameQueueUrl: ENVIRONMENT.frameQueueUrl,
        },
        who,
    );
}

/** A whole number within `range`, or `fallback` when unset. */
export function wholeNumberVariable(
    env: Environment,
    name: string,
    range: WholeNumberRange & { oneOf?: readonly number[] },
    fallback: number,
): number {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const problem = wholeNumberProblem(Number(raw), range);
    if (problem) throw farmError("invalid_environment", `environment variable ${name} ${problem}, got "${raw}"`);
    return Number(raw);
}

/** on/true/1/yes or off/false/0/no; `fallback` when unset. */
export function switchVariable(env: Environment, name: string, fallback: boolean): boolean {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const value = raw.trim().toLowerCase();
    if (["on", "true", "1", "yes"].includes(value)) return true;
    if (["off", "false", "0", "no"].includes(value)) return false;
    throw farmError("invalid_environment", `environment variable ${name} must be on or off, got "${raw}"`);
}

/** A comma-separated list of engines; every engine when unset. */
export function enginesVariable(env: Environment, name: string): Engine[] {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return [...FARM_SETTINGS.allowedEngines.defaultValue];
    const names = raw
        .split(",")
        .map((engine) => engine.trim().toUpperCase())
        .filter((engine) => engine !== "");
    const unknown = names.filter((engine) => !(ENGINES as readonly string[]).includes(engine));
    if (unknown.length > 0)
        throw farmError(
            "invalid_environment",
            `${name} has unknown engine(s) ${unknown.join(", ")}; known: ${ENGINES.join(", ")}`,
        );
    return [...new Set(names)] as Engine[];
}
