// Reads a Dockerfile into its stages and instructions (continuations joined, comments dropped, ARG defaults
// substituted), so the image's ENTRYPOINT, CMD, ENV and COPY lines are taken from the file, never retyped.

export interface Instruction {
    keyword: string;
    /** The arguments after the keyword, flags (--from=, --chmod=) removed. */
    args: string;
    /** e.g. { from: "handler", chmod: "755" } */
    flags: Record<string, string>;
    /** 1-based line where the instruction starts, for error messages. */
    line: number;
}

export interface Stage {
    /** The name after AS, else its index as a string. */
    name: string;
    /** The base image, ARGs substituted, e.g. node:22-bookworm-slim. */
    from: string;
    instructions: Instruction[];
}

export interface Dockerfile {
    stages: Stage[];
    /** The stage the image is made of: the last one. */
    final: Stage;
    stage(name: string): Stage;
}

function substitute(text: string, args: Record<string, string>): string {
    return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced, bare) => {
        const name = braced ?? bare;
        return name in args ? args[name] : whole;
    });
}

export function parseDockerfile(text: string): Dockerfile {
    const stages: Stage[] = [];
    /** ARGs declared before the first FROM: usable in FROM lines. */
    const globalArgs: Record<string, string> = {};
    const lines = text.split("\n");
    for (let index = 0; index < lines.length; index++) {
        const start = index;
        let logical = lines[index];
        if (/^\s*(#|$)/.test(logical)) continue;
        while (/\\\s*$/.test(logical) && index + 1 < lines.length) {
            index++;
            // Comment lines inside a continuation are dropped, as Docker does.
            if (/^\s*#/.test(lines[index])) continue;
            logical = `${logical.replace(/\\\s*$/, "")}\n${lines[index]}`;
        }
        const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(logical);
        if (!match) throw new Error(`Dockerfile line ${start + 1}: cannot read "${logical.trim()}"`);
        const keyword = match[1].toUpperCase();
        let rest = match[2].trim();
        const flags: Record<string, string> = {};
        for (let flag = /^--([a-z-]+)=(\S+)\s+/.exec(rest); flag; flag = /^--([a-z-]+)=(\S+)\s+/.exec(rest)) {
            flags[flag[1]] = flag[2];
            rest = rest.slice(flag[0].length);
        }
        if (keyword === "FROM") {
            const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
            if (!from) throw new Error(`Dockerfile line ${start + 1}: cannot read FROM ${rest}`);
            stages.push({
                name: from[2] ?? String(stages.length),
                from: substitute(from[1], globalArgs),
                instructions: [],
            });
            continue;
        }
        if (stages.length === 0) {
            if (keyword !== "ARG") throw new Error(`Dockerfile line ${start + 1}: ${keyword} before the first FROM`);
            const [name, value = ""] = rest.split("=");
            globalArgs[name] = value;
            continue;
        }
        stages[stages.length - 1].instructions.push({ keyword, args: rest, flags, line: start + 1 });
    }
    if (stages.length === 0) throw new Error("the Dockerfile has no FROM");
    return {
        stages,
        final: stages[stages.length - 1],
        stage(name) {
            const found = stages.find((stage) => stage.name === name);
            if (!found) throw new Error(`the Dockerfile has no stage named ${name}`);
            return found;
        },
    };
}

/** The exec form (JSON array) of ENTRYPOINT or CMD; the shell form is refused (Lambda needs the exec form). */
export function execForm(instruction: Instruction): string[] {
    let parsed: unknown;
    try {
        parsed = JSON.parse(instruction.args);
    } catch {
        parsed = undefined;
    }
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string"))
        throw new Error(
            `Dockerfile line ${instruction.line}: ${instruction.keyword} must be in exec form (a JSON array of strings), got ${instruction.args}`,
        );
    return parsed;
}

/** ENV K=V K2="V 2" (or the old ENV K V) into pairs. */
export function envPairs(instruction: Instruction): Record<string, string> {
    const text = instruction.args.trim();
    const pairs: Record<string, string> = {};
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(text)) {
        const [name, ...value] = text.split(/\s+/);
        pairs[name] = value.join(" ");
        return pairs;
    }
    const pattern = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
    for (const match of text.matchAll(pattern)) {
        const raw = match[2];
        pairs[match[1]] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw;
    }
    return pairs;
}

/** The last instruction of this keyword in the stage (Docker uses the last ENTRYPOINT/CMD/WORKDIR). */
export function lastInstruction(stage: Stage, keyword: string): Instruction | undefined {
    return stage.instructions.filter((instruction) => instruction.keyword === keyword).pop();
}
