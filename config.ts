// The stack's configuration (`render-farm:*`), read and validated once so a bad value fails
// `pulumi up` with a message that names the key.
import * as pulumi from "@pulumi/pulumi";
import { ENGINES, Engine } from "./functions/shared/contract";
import { FARM_DEFAULTS, TUNABLES } from "./functions/shared/farmSettings";

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

export function readFarmConfig(config = new pulumi.Config("render-farm")): FarmConfig {
    // Range and default from functions/shared/farmSettings.ts, where each is stated once.
    const number = (key: keyof typeof TUNABLES) => {
        const { min, max, defaultValue: fallback } = TUNABLES[key];
        return config.getNumber(key, { min, max }) ?? fallback;
    };
    const logRetentionDays = number("logRetentionDays");
    if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
        throw new pulumi.RunError(
            `Configuration 'render-farm:logRetentionDays' value '${logRetentionDays}' is not one CloudWatch accepts (${LOG_RETENTION_DAYS.join(", ")})`,
        );
    }
    return {
        blenderVersion: config.get("blenderVersion", { pattern: /^\d+\.\d+\.\d+$/ }) ?? FARM_DEFAULTS.blenderVersion,
        rendererMemoryMb: number("rendererMemory"),
        rendererTimeoutSeconds: number("rendererTimeout"),
        rendererEphemeralStorageMb: number("rendererEphemeralStorage"),
        maxConcurrency: number("maxConcurrency"),
        maxReceiveCount: number("maxReceiveCount"),
        failureBackoffSeconds: number("failureBackoffSeconds"),
        maxFramesPerJob: number("maxFramesPerJob"),
        maxResolution: number("maxResolution"),
        allowedEngines: readAllowedEngines(config),
        renderRetentionDays: number("renderRetentionDays"),
        forceDestroy: config.getBoolean("forceDestroy") ?? false,
        preflight: config.getBoolean("preflight") ?? FARM_DEFAULTS.preflight,
        apiAuth: (config.get("apiAuth", { allowedValues: ["iam", "none"] }) ?? FARM_DEFAULTS.apiAuth) as ApiAuth,
        apiRateLimit: number("apiRateLimit"),
        apiBurstLimit: number("apiBurstLimit"),
        logRetentionDays,
        imagesToKeep: number("imagesToKeep"),
    };
}

function readAllowedEngines(config: pulumi.Config): Engine[] {
    const key = "render-farm:allowedEngines";
    const engines = config.getObject<unknown>("allowedEngines") ?? [...FARM_DEFAULTS.allowedEngines];
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
