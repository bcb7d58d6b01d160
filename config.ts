// The stack's configuration (`render-farm:*`), read and validated once so a bad value fails
// `pulumi up` with a message that names the key.
import * as pulumi from "@pulumi/pulumi";
import { ENGINES, Engine } from "./functions/shared/contract";

export type ApiAuth = "iam" | "none";

export interface FarmConfig {
    blenderVersion: string;
    rendererMemoryMb: number;
    rendererTimeoutSeconds: number;
    rendererEphemeralStorageMb: number;
    maxConcurrency: number;
    maxReceiveCount: number;
    failureBackoffSeconds: number;
    maxFramesPerJob: number;
    maxResolution: number;
    allowedEngines: Engine[];
    renderRetentionDays: number;
    forceDestroy: boolean;
    preflight: boolean;
    apiAuth: ApiAuth;
    apiRateLimit: number;
    apiBurstLimit: number;
    logRetentionDays: number;
    imagesToKeep: number;
}

/** The values CloudWatch Logs accepts for a log group's retention. */
export const LOG_RETENTION_DAYS = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

export const CONFIG_DEFAULTS = {
    blenderVersion: "4.5.0",
    rendererMemoryMb: 10240,
    rendererTimeoutSeconds: 900,
    rendererEphemeralStorageMb: 10240,
    maxConcurrency: 100,
    maxReceiveCount: 3,
    failureBackoffSeconds: 10,
    maxFramesPerJob: 10000,
    maxResolution: 8192,
    renderRetentionDays: 30,
    apiRateLimit: 20,
    apiBurstLimit: 50,
    logRetentionDays: 14,
    imagesToKeep: 5,
};

export function readFarmConfig(config = new pulumi.Config("render-farm")): FarmConfig {
    const number = (key: string, fallback: number, min: number, max: number) =>
        config.getNumber(key, { min, max }) ?? fallback;
    const logRetentionDays = number("logRetentionDays", CONFIG_DEFAULTS.logRetentionDays, 1, 3653);
    if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
        throw new pulumi.RunError(
            `Configuration 'render-farm:logRetentionDays' value '${logRetentionDays}' is not one CloudWatch accepts (${LOG_RETENTION_DAYS.join(", ")})`,
        );
    }
    return {
        blenderVersion: config.get("blenderVersion", { pattern: /^\d+\.\d+\.\d+$/ }) ?? CONFIG_DEFAULTS.blenderVersion,
        // Below 2 GB Blender runs out of memory on ordinary scenes; 10240 MB is Lambda's maximum (6 vCPU).
        rendererMemoryMb: number("rendererMemory", CONFIG_DEFAULTS.rendererMemoryMb, 2048, 10240),
        rendererTimeoutSeconds: number("rendererTimeout", CONFIG_DEFAULTS.rendererTimeoutSeconds, 60, 900),
        rendererEphemeralStorageMb: number(
            "rendererEphemeralStorage",
            CONFIG_DEFAULTS.rendererEphemeralStorageMb,
            512,
            10240,
        ),
        // The event source mapping's maximumConcurrency accepts 2..1000.
        maxConcurrency: number("maxConcurrency", CONFIG_DEFAULTS.maxConcurrency, 2, 1000),
        maxReceiveCount: number("maxReceiveCount", CONFIG_DEFAULTS.maxReceiveCount, 1, 10),
        failureBackoffSeconds: number("failureBackoffSeconds", CONFIG_DEFAULTS.failureBackoffSeconds, 0, 900),
        maxFramesPerJob: number("maxFramesPerJob", CONFIG_DEFAULTS.maxFramesPerJob, 1, 100000),
        maxResolution: number("maxResolution", CONFIG_DEFAULTS.maxResolution, 16, 16384),
        allowedEngines: readAllowedEngines(config),
        renderRetentionDays: number("renderRetentionDays", CONFIG_DEFAULTS.renderRetentionDays, 1, 3650),
        forceDestroy: config.getBoolean("forceDestroy") ?? false,
        preflight: config.getBoolean("preflight") ?? true,
        apiAuth: (config.get("apiAuth", { allowedValues: ["iam", "none"] }) ?? "iam") as ApiAuth,
        apiRateLimit: number("apiRateLimit", CONFIG_DEFAULTS.apiRateLimit, 1, 10000),
        apiBurstLimit: number("apiBurstLimit", CONFIG_DEFAULTS.apiBurstLimit, 1, 5000),
        logRetentionDays,
        imagesToKeep: number("imagesToKeep", CONFIG_DEFAULTS.imagesToKeep, 1, 100),
    };
}

function readAllowedEngines(config: pulumi.Config): Engine[] {
    const key = "render-farm:allowedEngines";
    const engines = config.getObject<unknown>("allowedEngines") ?? [...ENGINES];
    if (!Array.isArray(engines) || engines.length === 0) {
        throw new pulumi.RunError(`Configuration '${key}' must be a non-empty list of engines (${ENGINES.join(", ")})`);
    }
    for (const engine of engines) {
        if (!ENGINES.includes(engine as Engine)) {
            throw new pulumi.RunError(
                `Configuration '${key}' has unknown engine '${engine}'; allowed: ${ENGINES.join(", ")}`,
            );
        }
    }
    return engines as Engine[];
}
