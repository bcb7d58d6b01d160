// The TypeScript .blend reader against Blender itself: every file Blender can be asked about here (generated
// fixtures, the 2016 scene nobody on this project wrote, and every .blend Debian's Blender installs) is read by
// both, and the reader must report what bpy reports, field by field. Then the same files converted to the
// layouts this Blender cannot write (big-endian, 4-byte pointers, Blender 5's format 1), and fuzzing.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { BlendSummary, inspectBlendFile, isBlendFileError, readBlendBuffer, readBlendStream } from "../functions/blend";
import { blendFixtures } from "./support/blendFixtures";
import { CUBE_2016_SCENE, runBlenderScript } from "./support/scenes";

const ORACLE_SCRIPT = path.join(__dirname, "fixtures", "blend_oracle.py");
const SYSTEM_BLENDS = "/usr/share/blender";

function blendFilesUnder(root: string): string[] {
    if (!fs.existsSync(root)) return [];
    return (fs.readdirSync(root, { recursive: true }) as string[])
        .filter((name) => name.endsWith(".blend"))
        .map((name) => path.join(root, name))
        .sort();
}

interface OracleReport {
    file: string;
    error?: string;
    version: [number, number, number];
    activeScene: string | null;
    scenes: Record<string, unknown>[];
    images: Record<string, unknown>[];
    libraries: Record<string, unknown>[];
    movieClips: Record<string, unknown>[];
    volumes: Record<string, unknown>[];
    cacheFiles: Record<string, unknown>[];
    fonts: Record<string, unknown>[];
}

/** One Blender run reports on every file. */
async function oracle(files: string[]): Promise<Map<string, OracleReport>> {
    const { stdout } = await runBlenderScript(ORACLE_SCRIPT, [...files], { timeoutMs: 600_000 });
    const reports = new Map<string, OracleReport>();
    for (const line of stdout.split("\n")) {
        if (line.startsWith("BLEND_ORACLE ")) {
            const report = JSON.parse(line.slice("BLEND_ORACLE ".length)) as OracleReport;
            reports.set(report.file, report);
        }
    }
    return reports;
}

const LISTS = ["scenes", "images", "libraries", "movieClips", "volumes", "cacheFiles", "fonts"] as const;
const byName = (a: Record<string, unknown>, b: Record<string, unknown>) =>
    String(a.name) < String(b.name) ? -1 : String(a.name) > String(b.name) ? 1 : 0;

/** The oracle's view, kept to what the file itself holds (linked data-blocks live in their library), sorted by name. */
function expectedOf(report: OracleReport): Record<string, unknown> {
    const expected: Record<string, unknown> = { version: report.version, activeScene: report.activeScene };
    for (const list of LISTS) {
        expected[list] = report[list]
            .filter((item) => item.library === undefined || item.library === null)
            .map(({ library: _library, ...rest }) => rest)
            .sort(byName);
    }
    return expected;
}

function actualOf(summary: BlendSummary): Record<string, unknown> {
    const actual: Record<string, unknown> = { version: summary.version, activeScene: summary.activeScene };
    for (const list of LISTS) actual[list] = [...(summary[list] as unknown as Record<string, unknown>[])].sort(byName);
    return actual;
}

/** Field-by-field differences, as "file: scenes[Second].frameStep: reader 1, Blender 5". */
function differences(file: string, actual: unknown, expected: unknown, at = ""): string[] {
    if (Array.isArray(expected) && Array.isArray(actual)) {
        const out: string[] = [];
        if (actual.length !== expected.length)
            out.push(`${file}: ${at} has ${actual.length} entries, Blender ${expected.length}`);
        for (let index = 0; index < Math.min(actual.length, expected.length); index++) {
            const label = (expected[index] as { name?: string })?.name ?? String(index);
            out.push(...differences(file, actual[index], expected[index], `${at}[${label}]`));
        }
        return out;
    }
    if (typeof expected === "object" && expected !== null && typeof actual === "object" && actual !== null) {
        return Object.keys(expected).flatMap((key) =>
            differences(
                file,
                (actual as Record<string, unknown>)[key],
                (expected as Record<string, unknown>)[key],
                at ? `${at}.${key}` : key,
            ),
        );
    }
    return JSON.stringify(actual) === JSON.stringify(expected)
        ? []
        : [`${file}: ${at}: reader ${JSON.stringify(actual)}, Blender ${JSON.stringify(expected)}`];
}

// ---- layout conversion: the same file as a big-endian, 4-byte-pointer or format-1 Blender would write it ----

interface RawBlock {
    code: Buffer;
    length: number;
    old: bigint;
    sdnaIndex: number;
    count: number;
    data: Buffer;
}

interface RawSdna {
    names: string[];
    types: string[];
    sizes: number[];
    structs: { type: number; fields: [number, number][] }[];
}

function parseRaw(bytes: Buffer): { version: string; blocks: RawBlock[]; sdna: RawSdna } {
    assert.strictEqual(
        bytes.toString("latin1", 0, 9),
        "BLENDER-v",
        "conversion starts from a little-endian 8-byte-pointer file",
    );
    const blocks: RawBlock[] = [];
    let at = 12;
    for (;;) {
        const block: RawBlock = {
            code: bytes.subarray(at, at + 4),
            length: bytes.readInt32LE(at + 4),
            old: bytes.readBigUInt64LE(at + 8),
            sdnaIndex: bytes.readInt32LE(at + 16),
            count: bytes.readInt32LE(at + 20),
            data: Buffer.alloc(0),
        };
        block.data = bytes.subarray(at + 24, at + 24 + block.length);
        at += 24 + block.length;
        if (block.code.toString("latin1") === "ENDB") break;
        blocks.push(block);
    }
    const dna = blocks.find((block) => block.code.toString("latin1") === "DNA1")!.data;
    let offset = 8;
    const readStrings = () => {
        const count = dna.readInt32LE(offset);
        offset += 4;
        const list: string[] = [];
        for (let index = 0; index < count; index++) {
            const end = dna.indexOf(0, offset);
            list.push(dna.toString("latin1", offset, end));
            offset = end + 1;
        }
        offset = (offset + 3) & ~3;
        return list;
    };
    const names = readStrings();
    offset += 4; // TYPE
    const types = readStrings();
    offset += 4; // TLEN
    const sizes = types.map((_, index) => dna.readUInt16LE(offset + index * 2));
    offset = (offset + types.length * 2 + 3) & ~3;
    offset += 4; // STRC
    const structCount = dna.readInt32LE(offset);
    offset += 4;
    const structs: RawSdna["structs"] = [];
    for (let index = 0; index < structCount; index++) {
        const type = dna.readInt16LE(offset);
        const fieldCount = dna.readInt16LE(offset + 2);
        offset += 4;
        const fields: [number, number][] = [];
        for (let field = 0; field < fieldCount; field++, offset += 4)
            fields.push([dna.readInt16LE(offset), dna.readInt16LE(offset + 2)]);
        structs.push({ type, fields });
    }
    return { version: bytes.toString("latin1", 9, 12), blocks, sdna: { names, types, sizes, structs } };
}

function convertBlend(
    original: Buffer,
    target: { pointerSize: 4 | 8; littleEndian: boolean; format1?: boolean },
): Buffer {
    const { version, blocks, sdna } = parseRaw(original);
    const P = target.pointerSize;
    const little = target.littleEndian;
    const structByType = new Map(sdna.structs.map((struct, index) => [struct.type, index]));
    const isPointer = (name: string) => name.startsWith("*") || name.startsWith("(*");
    const arrayLength = (name: string) =>
        name.startsWith("(")
            ? 1
            : [...name.matchAll(/\[(\d+)\]/g)].reduce((product, match) => product * Number(match[1]), 1);
    const newSizes = new Map<number, number>();
    const typeSize = (type: number): number => {
        const structIndex = structByType.get(type);
        if (structIndex === undefined) return sdna.sizes[type];
        if (!newSizes.has(type)) {
            newSizes.set(
                type,
                sdna.structs[structIndex].fields.reduce(
                    (sum, [fieldType, fieldName]) =>
                        sum +
                        (isPointer(sdna.names[fieldName]) ? P : typeSize(fieldType)) *
                            arrayLength(sdna.names[fieldName]),
                    0,
                ),
            );
        }
        return newSizes.get(type)!;
    };
    const pointerIds = new Map<bigint, bigint>();
    const mapPointer = (value: bigint): bigint => {
        if (value === 0n || P === 8) return value;
        if (!pointerIds.has(value)) pointerIds.set(value, BigInt(0x1000 + pointerIds.size * 16));
        return pointerIds.get(value)!;
    };
    const writePointer = (out: Buffer, at: number, value: bigint) => {
        if (P === 8) little ? out.writeBigUInt64LE(value, at) : out.writeBigUInt64BE(value, at);
        else little ? out.writeUInt32LE(Number(value), at) : out.writeUInt32BE(Number(value), at);
    };
    const convertStruct = (structIndex: number, source: Buffer, from: number, out: Buffer, to: number): void => {
        for (const [fieldType, fieldName] of sdna.structs[structIndex].fields) {
            const name = sdna.names[fieldName];
            const count = arrayLength(name);
            if (isPointer(name)) {
                for (let index = 0; index < count; index++, from += 8, to += P)
                    writePointer(out, to, mapPointer(source.readBigUInt64LE(from)));
            } else if (structByType.has(fieldType)) {
                const nestedIndex = structByType.get(fieldType)!;
                for (let index = 0; index < count; index++) {
                    convertStruct(nestedIndex, source, from, out, to);
                    from += sdna.sizes[fieldType];
                    to += typeSize(fieldType);
                }
            } else {
                const size = sdna.sizes[fieldType];
                for (let index = 0; index < count; index++, from += size, to += size) {
                    for (let byte = 0; byte < size; byte++)
                        out[to + byte] = source[from + (little || size === 1 ? byte : size - 1 - byte)];
                }
            }
        }
    };
    const int32 = (value: number) => {
        const out = Buffer.alloc(4);
        little ? out.writeInt32LE(value) : out.writeInt32BE(value);
        return out;
    };
    const convertDna = (): Buffer => {
        const parts: Buffer[] = [Buffer.from("SDNA")];
        const strings = (tag: string, list: string[]) => {
            parts.push(Buffer.from(tag), int32(list.length));
            const body = Buffer.from(list.map((item) => `${item}\0`).join(""), "latin1");
            parts.push(body, Buffer.alloc((4 - (body.length % 4)) % 4));
        };
        strings("NAME", sdna.names);
        strings("TYPE", sdna.types);
        parts.push(Buffer.from("TLEN"));
        const sizes = Buffer.alloc(sdna.types.length * 2);
        for (let index = 0; index < sdna.types.length; index++) {
            if (little) sizes.writeUInt16LE(typeSize(index), index * 2);
            else sizes.writeUInt16BE(typeSize(index), index * 2);
        }
        parts.push(sizes, Buffer.alloc((4 - (sizes.length % 4)) % 4), Buffer.from("STRC"), int32(sdna.structs.length));
        for (const struct of sdna.structs) {
            const body = Buffer.alloc(4 + struct.fields.length * 4);
            const write16 = (value: number, at: number) =>
                little ? body.writeInt16LE(value, at) : body.writeInt16BE(value, at);
            write16(struct.type, 0);
            write16(struct.fields.length, 2);
            struct.fields.forEach(([type, name], index) => {
                write16(type, 4 + index * 4);
                write16(name, 6 + index * 4);
            });
            parts.push(body);
        }
        return Buffer.concat(parts);
    };
    const blockHeader = (code: Buffer, length: number, old: bigint, sdnaIndex: number, count: number): Buffer => {
        // Two-letter ID codes are an int: "SC\0\0" little-endian reads "\0\0SC" big-endian.
        const codeBytes = !little && code[2] === 0 && code[3] === 0 ? Buffer.from([0, 0, code[0], code[1]]) : code;
        if (target.format1) {
            const out = Buffer.alloc(32);
            codeBytes.copy(out, 0);
            out.writeInt32LE(sdnaIndex, 4);
            out.writeBigUInt64LE(old, 8);
            out.writeBigInt64LE(BigInt(length), 16);
            out.writeBigInt64LE(BigInt(count), 24);
            return out;
        }
        const out = Buffer.alloc(16 + P);
        codeBytes.copy(out, 0);
        little ? out.writeInt32LE(length, 4) : out.writeInt32BE(length, 4);
        writePointer(out, 8, old);
        little ? out.writeInt32LE(sdnaIndex, 8 + P) : out.writeInt32BE(sdnaIndex, 8 + P);
        little ? out.writeInt32LE(count, 12 + P) : out.writeInt32BE(count, 12 + P);
        return out;
    };

    const header = target.format1
        ? `BLENDER17-01v0${version}`
        : `BLENDER${P === 4 ? "_" : "-"}${little ? "v" : "V"}${version}`;
    const parts: Buffer[] = [Buffer.from(header, "latin1")];
    for (const block of blocks) {
        let data = block.data;
        if (block.code.toString("latin1") === "DNA1") data = convertDna();
        else {
            const struct = sdna.structs[block.sdnaIndex];
            const size = struct ? sdna.sizes[struct.type] : 0;
            if (struct && size > 0 && size * block.count === block.length) {
                data = Buffer.alloc(typeSize(struct.type) * block.count);
                for (let index = 0; index < block.count; index++)
                    convertStruct(block.sdnaIndex, block.data, index * size, data, index * typeSize(struct.type));
            }
        }
        parts.push(blockHeader(block.code, data.length, mapPointer(block.old), block.sdnaIndex, block.count), data);
    }
    parts.push(blockHeader(Buffer.from("ENDB"), 0, 0n, 0, 0));
    return Buffer.concat(parts);
}

// ---- fuzzing ----

/** mulberry32: a seeded generator, so a failing case can be replayed from its seed. */
function random(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

type Outcome =
    | { kind: "summary"; summary: BlendSummary }
    | { kind: "typed"; code: string }
    | { kind: "other"; error: unknown };

async function outcomeOf(bytes: Uint8Array, chunkSize: number): Promise<Outcome> {
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
    try {
        return { kind: "summary", summary: await readBlendStream(chunks, "fuzz.blend") };
    } catch (error) {
        return isBlendFileError(error) ? { kind: "typed", code: error.code } : { kind: "other", error };
    }
}

describe(".blend reader", function () {
    let fixtures: string;
    let files: string[];
    let reports: Map<string, OracleReport>;

    before(async function () {
        fixtures = await blendFixtures();
        files = [...blendFilesUnder(fixtures), CUBE_2016_SCENE, ...blendFilesUnder(SYSTEM_BLENDS)];
        reports = await oracle(files);
    });

    it("reports what Blender reports, field by field, for every .blend here", async function () {
        assert.ok(fs.existsSync(CUBE_2016_SCENE), `${CUBE_2016_SCENE} is missing`);
        assert.ok(
            blendFilesUnder(SYSTEM_BLENDS).length >= 6,
            "Debian's Blender installs at least 6 .blend files under /usr/share/blender",
        );
        const mismatches: string[] = [];
        const compressions = new Set<string>();
        for (const file of files) {
            const report = reports.get(file);
            assert.ok(report && !report.error, `Blender could not report on ${file}: ${report?.error ?? "no output"}`);
            const summary = await inspectBlendFile(file);
            compressions.add(summary.compression);
            mismatches.push(
                ...differences(path.relative(path.dirname(fixtures), file), actualOf(summary), expectedOf(report)),
            );
        }
        assert.deepStrictEqual(mismatches, []);
        assert.deepStrictEqual([...compressions].sort(), ["gzip", "none", "zstd"]);
        console.log(`      compared ${files.length} files: version, active scene, ${LISTS.join(", ")}`);
    });

    it("was given fixtures that cover what the reader must get right (so the comparison above means something)", function () {
        const all = [...reports.values()];
        const images = all.flatMap((report) => report.images);
        const scenes = all.flatMap((report) => report.scenes);
        assert.ok(
            images.some((image) => image.packed === true && image.source === "FILE"),
            "a packed image",
        );
        assert.ok(
            images.some(
                (image) => image.packed === false && image.source === "FILE" && String(image.filepath).startsWith("//"),
            ),
            "an external image",
        );
        assert.ok(
            images.some((image) => image.source === "SEQUENCE"),
            "an image sequence",
        );
        assert.ok(
            images.some((image) => image.source === "TILED" && JSON.stringify(image.tiles) === "[1001,1002,1011]"),
            "UDIM tiles",
        );
        assert.ok(
            all.some((report) => report.libraries.length > 0),
            "a linked library",
        );
        assert.ok(
            scenes.some((scene) => scene.camera === null),
            "a scene without a camera",
        );
        assert.ok(
            scenes.some((scene) => scene.frameStep !== 1 && scene.resolutionPercentage !== 100),
            "a non-default step and percentage",
        );
        assert.ok(
            all.some((report) => report.activeScene !== report.scenes[0]?.name),
            "a file whose active scene is not the first",
        );
        assert.ok(
            all.some(
                (report) =>
                    report.movieClips.length > 0 &&
                    report.volumes.length > 0 &&
                    report.cacheFiles.length > 0 &&
                    report.fonts.some((font) => font.filepath !== "<builtin>"),
            ),
            "other external files",
        );
        assert.ok(
            all.some((report) => report.version[0] === 2 && report.version[1] < 80),
            "a pre-2.80 file",
        );
        // Each setting that decides tile exactness, on in one scene and off in another.
        for (const setting of [
            "compositing",
            "border",
            "sequencer",
            "cyclesDenoising",
            "cyclesAdaptiveSampling",
            "cyclesAutoTile",
            "cyclesGuiding",
            "motionBlur",
        ]) {
            assert.ok(
                scenes.some((scene) => scene[setting] === true) && scenes.some((scene) => scene[setting] === false),
                `${setting} on and off`,
            );
        }
        const exactness = all.find((report) => report.file.endsWith("exactness.blend"));
        const scene = (name: string) => exactness?.scenes.find((candidate) => candidate.name === name);
        assert.strictEqual(scene("Defaults")?.cyclesDenoising, true, "denoising never set: Cycles' default since 3.0");
        assert.strictEqual(scene("DenoiseOff")?.cyclesDenoising, false, "denoising turned off");
        assert.strictEqual(scene("NodesUnused")?.compositing, false, "a node tree without Use Nodes");
        assert.strictEqual(scene("SequencerSound")?.sequencer, false, "a sound strip alone");
        assert.ok(
            all.some((report) => report.version[0] === 2 && report.scenes.some((old) => old.cyclesDenoising === false)),
            "a file older than 3.0, whose unset denoising reads False",
        );
    });

    it("reads the same summary however the stream is cut into chunks", async function () {
        const rng = random(7);
        for (const name of ["uncompressed.blend", "gzip.blend", "zstd.blend", "udim.blend"]) {
            const file = path.join(fixtures, name);
            const whole = await inspectBlendFile(file);
            const bytes = fs.readFileSync(file);
            const chunks: Uint8Array[] = [];
            for (let at = 0; at < bytes.length; ) {
                const size = 1 + Math.floor(rng() * 97);
                chunks.push(bytes.subarray(at, at + size));
                at += size;
            }
            assert.deepStrictEqual(await readBlendStream(chunks, file), whole, name);
        }
    });

    it("reads big-endian, 4-byte-pointer and Blender 5 (format 1, 64-bit block header) layouts of the same files", async function () {
        const sources = [
            "udim.blend",
            "two-scenes.blend",
            "library.blend",
            "external.blend",
            "packed.blend",
            "other-files.blend",
            "exactness.blend",
        ].map((name) => path.join(fixtures, name));
        sources.push(CUBE_2016_SCENE);
        const layouts = [
            { pointerSize: 4 as const, littleEndian: true },
            { pointerSize: 8 as const, littleEndian: false },
            { pointerSize: 4 as const, littleEndian: false },
            { pointerSize: 8 as const, littleEndian: true, format1: true },
        ];
        for (const file of sources) {
            const original = await inspectBlendFile(file);
            for (const layout of layouts) {
                const converted = await readBlendBuffer(convertBlend(fs.readFileSync(file), layout), file);
                const label = `${path.basename(file)} as ${JSON.stringify(layout)}`;
                assert.deepStrictEqual(
                    converted.header,
                    {
                        pointerSize: layout.pointerSize,
                        littleEndian: layout.littleEndian,
                        fileFormatVersion: layout.format1 ? 1 : 0,
                    },
                    label,
                );
                assert.deepStrictEqual(actualOf(converted), actualOf(original), label);
            }
        }
    });

    it("refuses what is not a .blend, and headers it does not know, with the typed error", async function () {
        const cases: [string, Uint8Array, string][] = [
            ["zero bytes", new Uint8Array(0), "not_a_blend"],
            ["a PNG", Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"), "not_a_blend"],
            ["text", Buffer.from("hello, this is not a blend file at all"), "not_a_blend"],
            ["3 bytes", Buffer.from("BLE"), "truncated"],
            ["gzip of text", zlib.gzipSync(Buffer.from("not a blend")), "not_a_blend"],
            ["a future file format", Buffer.from(`BLENDER17-02v0600${"\0".repeat(64)}`), "unsupported_header"],
            ["an unknown header size", Buffer.from(`BLENDER21-01v0600${"\0".repeat(64)}`), "unsupported_header"],
            ["an unknown endianness", Buffer.from(`BLENDER-x304${"\0".repeat(64)}`), "unsupported_header"],
            ["a header only", Buffer.from("BLENDER-v304"), "truncated"],
        ];
        for (const [name, bytes, code] of cases) {
            const outcome = await outcomeOf(bytes, 1 << 20);
            assert.ok(
                outcome.kind === "typed" && outcome.code === code,
                `${name}: ${JSON.stringify(outcome.kind === "other" ? String(outcome.error) : outcome)}`,
            );
        }
        const error = await readBlendBuffer(Buffer.from("hello"), "shots/a/notes.blend").catch((caught) => caught);
        assert.ok(isBlendFileError(error));
        assert.match(error.message, /shots\/a\/notes\.blend/, "the message names the file");
    });

    it("keeps memory bounded: absurd lengths and windows end in the typed error before anything is allocated", async function () {
        const header = Buffer.from("BLENDER-v304");
        const block = (code: string, length: number) => {
            const out = Buffer.alloc(24);
            out.write(code, 0, "latin1");
            out.writeInt32LE(length, 4);
            return out;
        };
        const hugeScene = await outcomeOf(
            Buffer.concat([header, block("SC\0\0", 0x7fffffff), Buffer.alloc(100)]),
            4096,
        );
        assert.deepStrictEqual(hugeScene, { kind: "typed", code: "too_large" });
        // A 2^31-byte mesh block is skipped, not buffered: the file then ends inside it.
        const hugeMesh = await outcomeOf(Buffer.concat([header, block("DATA", 0x7fffffff), Buffer.alloc(100)]), 4096);
        assert.deepStrictEqual(hugeMesh, { kind: "typed", code: "truncated" });
        // A zstd frame asking for a 2 GiB window (fzstd would allocate it).
        const zstdHugeWindow = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x00, 0x00, 0x00]);
        assert.deepStrictEqual(await outcomeOf(zstdHugeWindow, 4096), { kind: "typed", code: "bad_compression" });
        const zstdHugeContent = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x00, 0x00]);
        assert.deepStrictEqual(await outcomeOf(zstdHugeContent, 4096), { kind: "typed", code: "bad_compression" });
        // An SDNA whose name count claims more entries than the block holds.
        const dna = Buffer.concat([Buffer.from("SDNANAME"), Buffer.from([0xff, 0xff, 0xff, 0x0f])]);
        const badDna = await outcomeOf(Buffer.concat([header, block("DNA1", dna.length), dna, block("ENDB", 0)]), 4096);
        assert.deepStrictEqual(badDna, { kind: "typed", code: "corrupt" });
    });

    it("ends 2,000+ truncated, corrupted and random inputs in the typed error: no crash, no hang", async function () {
        const seed = Number(process.env.FUZZ_SEED ?? 20240611);
        const rng = random(seed);
        const int = (below: number) => Math.floor(rng() * below);
        const sources = ["uncompressed.blend", "gzip.blend", "zstd.blend", "udim.blend"].map((name) =>
            fs.readFileSync(path.join(fixtures, name)),
        );
        const expected = await Promise.all(
            ["uncompressed.blend", "gzip.blend", "zstd.blend", "udim.blend"].map((name) =>
                readBlendBuffer(fs.readFileSync(path.join(fixtures, name)), "fuzz.blend"),
            ),
        );
        const counts = { truncated: 0, corrupted: 0, random: 0, typed: 0, parsed: 0 };
        const failures: string[] = [];
        const rssBefore = process.memoryUsage().rss;
        let slowest = 0;
        const check = async (label: string, bytes: Uint8Array, mustFail: boolean, same?: BlendSummary) => {
            const started = Date.now();
            const outcome = await outcomeOf(bytes, 1 + int(65536));
            slowest = Math.max(slowest, Date.now() - started);
            if (outcome.kind === "other")
                failures.push(
                    `${label}: untyped ${outcome.error instanceof Error ? outcome.error.stack : String(outcome.error)}`,
                );
            else if (outcome.kind === "typed") counts.typed++;
            else {
                counts.parsed++;
                // A cut that keeps everything up to the end marker (or a flip in bytes nobody reads) may still parse.
                if (mustFail && (!same || JSON.stringify(outcome.summary.scenes) !== JSON.stringify(same.scenes)))
                    failures.push(`${label}: parsed into something else`);
            }
        };
        await check("zero bytes", new Uint8Array(0), true);
        for (let index = 0; index < 900; index++) {
            const which = index % sources.length;
            const source = sources[which];
            const cut = index < 40 ? index : int(source.length);
            counts.truncated++;
            await check(
                `seed ${seed} truncated #${index} (source ${which} at ${cut})`,
                source.subarray(0, cut),
                true,
                expected[which],
            );
        }
        for (let index = 0; index < 700; index++) {
            const which = index % sources.length;
            const bytes = Buffer.from(sources[which]);
            const flips = 1 + int(16);
            // Half the flips land in the first and last 4 KiB: headers, SDNA, the end marker.
            for (let flip = 0; flip < flips; flip++) {
                const at = rng() < 0.5 ? (rng() < 0.5 ? int(4096) : bytes.length - 1 - int(4096)) : int(bytes.length);
                bytes[at] = int(256);
            }
            counts.corrupted++;
            await check(`seed ${seed} corrupted #${index}`, bytes, false);
        }
        const prefixes = [
            Buffer.alloc(0),
            Buffer.from("BLENDER-v304"),
            Buffer.from("BLENDER_V276"),
            Buffer.from("BLENDER17-01v0500"),
            Buffer.from([0x1f, 0x8b]),
            Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
        ];
        for (let index = 0; index < 600; index++) {
            const body = Buffer.from(Array.from({ length: int(index < 300 ? 256 : 65536) }, () => int(256)));
            counts.random++;
            await check(
                `seed ${seed} random #${index}`,
                Buffer.concat([prefixes[index % prefixes.length], body]),
                false,
            );
        }
        const total = 1 + counts.truncated + counts.corrupted + counts.random;
        console.log(
            `      ${total} cases (${counts.truncated} truncated, ${counts.corrupted} corrupted, ${counts.random} random, 1 empty): ${counts.typed} typed errors, ${counts.parsed} parsed; slowest ${slowest} ms; rss +${Math.round((process.memoryUsage().rss - rssBefore) / 1048576)} MiB`,
        );
        assert.deepStrictEqual(failures.slice(0, 10), []);
        assert.ok(total >= 2000, `${total} cases`);
        assert.ok(slowest < 5000, `a case took ${slowest} ms`);
        assert.ok(process.memoryUsage().rss - rssBefore < 512 * 1048576, "memory stayed bounded");
    });
});
