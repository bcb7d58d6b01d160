// The stack's configuration (`render-farm:*`), read and validated once, as FARM_SETTINGS declares each key, so a bad
// value fails `pulumi up` with a message that names the key.
import * as pulumi from "@pulumi/pulumi";
import { ENGINES, Engine } from "./functions/shared/contract";
import {
    EnginesSetting,
    FARM_SETTINGS,
    FarmSetting,
    FarmSettings,
    WholeNumberSetting,
    wholeNumberProblem,
} from "./functions/shared/farmSettings";

/** Every key of a stack's config, with its default where the stack sets none. */
export type FarmConfig = FarmSettings;

export function readFarmConfig(config = new pulumi.Config("render-farm")): FarmConfig {
    const values: Record<string, unknown> = {};
    for (const [key, setting] of Object.entries<FarmSetting>(FARM_SETTINGS))
        values[key] = readKey(config, key, setting);
    return values as FarmConfig;
}

function readKey(config: pulumi.Config, key: string, setting: FarmSetting): unknown {
    switch (setting.kind) {
        case "wholeNumber":
            return readWholeNumber(config, key, setting);
        case "switch":
            return config.getBoolean(key) ?? setting.defaultValue;
        case "choice":
            return config.get(key, { allowedValues: [...setting.choices] }) ?? setting.defaultValue;
        case "version":
            return config.get(key, { pattern: new RegExp(setting.pattern) }) ?? setting.defaultValue;
        case "engines":
            return readEngines(config, key, setting);
    }
}

function readWholeNumber(config: pulumi.Config, key: string, setting: WholeNumberSetting): number {
    // Pulumi's own range check first: its messages are the ones users know.
    const value = config.getNumber(key, { min: setting.min, max: setting.max });
    if (value === undefined) return setting.defaultValue;
    const problem = wholeNumberProblem(value, setting);
    if (problem) throw new pulumi.RunError(`Configuration '${config.name}:${key}' value '${value}' ${problem}`);
    return value;
}

function readEngines(config: pulumi.Config, key: string, setting: EnginesSetting): Engine[] {
    const fullKey = `${config.name}:${key}`;
    const engines = config.getObject<unknown>(key) ?? [...setting.defaultValue];
    if (!Array.isArray(engines) || engines.length === 0) {
        throw new pulumi.RunError(
            `Configuration '${fullKey}' must be a non-empty list of engines (${ENGINES.join(", ")})`,
        );
    }
    for (const engine of engines) {
        if (!ENGINES.includes(engine as Engine)) {
            throw new pulumi.RunError(
                `Configuration '${fullKey}' has unknown engine '${engine}'; allowed: ${ENGINES.join(", ")}`,
            );
        }
    }
    return engines as Engine[];
}
