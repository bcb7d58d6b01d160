// Whether a scene's frames can be split into tiles (border renders without crop, stitched) that equal the whole
// frame exactly, from the .blend reader's summary: what cannot is refused at submit, each reason naming the
// setting to change. A setting the file cannot tell (null) is left to the renderer, which checks it in Blender.
import type { BlendScene } from "../blend";

/** EEVEE's engine ids: BLENDER_EEVEE (2.80 to 4.1, and 5.x) and BLENDER_EEVEE_NEXT (4.2 to 4.5). */
const EEVEE_IDS = ["BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"];

function engineName(engine: string): string {
    if (EEVEE_IDS.includes(engine)) return "EEVEE";
    if (engine === "BLENDER_WORKBENCH") return "Workbench";
    return engine;
}

/** The frame's size in pixels, after the resolution percentage (Blender's integer arithmetic). */
function outputWidth(scene: BlendScene): number {
    return Math.floor((scene.resolutionX * scene.resolutionPercentage) / 100);
}

function outputHeight(scene: BlendScene): number {
    return Math.floor((scene.resolutionY * scene.resolutionPercentage) / 100);
}

/** Adaptive sampling with Cycles' own tiling of a frame larger than its tile size: each tile adapts on its own. */
function adaptiveOverCyclesTiles(scene: BlendScene): boolean {
    const { cyclesAdaptiveSampling: adaptive, cyclesAutoTile: tiling, cyclesTileSize: size } = scene;
    return (
        adaptive === true &&
        tiling === true &&
        size !== null &&
        Math.max(outputWidth(scene), outputHeight(scene)) > size
    );
}

/**
 * Why the scene's frames cannot be split into tiles exactly; empty when they can. `engine` is the Blender engine id
 * the job renders with, after the request's override ("CYCLES", "BLENDER_EEVEE", ...).
 */
export function tileExactnessProblems(scene: BlendScene, engine: string): string[] {
    const problems: string[] = [];
    if (engine !== "CYCLES")
        problems.push(
            `the job renders with ${engineName(engine)}, whose screen-space effects and anti-aliasing work on the whole frame, so tiles would not match it; render with Cycles (Render Properties > Render Engine, or "engine": "CYCLES" in the request)`,
        );
    if (scene.compositing === true)
        problems.push(
            `scene "${scene.name}" renders through the compositor, which needs the whole frame; turn off Output Properties > Post Processing > Compositing (or remove the compositor node tree)`,
        );
    if (scene.cyclesDenoising === true && engine === "CYCLES")
        problems.push(
            `scene "${scene.name}" denoises its renders, and Cycles denoises each tile on its own, so seams would show; turn off Render Properties > Sampling > Render > Denoise`,
        );
    if (engine === "CYCLES" && scene.cyclesGuiding === true)
        problems.push(
            `scene "${scene.name}" uses path guiding, which learns where light comes from over the whole render, so each tile would learn otherwise; turn off Render Properties > Sampling > Path Guiding`,
        );
    if (engine === "CYCLES" && adaptiveOverCyclesTiles(scene))
        problems.push(
            `scene "${scene.name}" samples adaptively and Cycles splits its ${outputWidth(scene)}x${outputHeight(scene)} frame into tiles of its own (${scene.cyclesTileSize} px), each adapting with only a few pixels of its neighbours, so a farm tile would not match them; turn off Render Properties > Performance > Memory > Use Tiling, or Render Properties > Sampling > Render > Noise Threshold`,
        );
    if (scene.sequencer === true)
        problems.push(
            `scene "${scene.name}" renders its Video Sequencer strips instead of the 3D scene; turn off Output Properties > Post Processing > Sequencer (or remove the strips)`,
        );
    if (scene.border === true)
        problems.push(
            `scene "${scene.name}" renders only its own border region (Output Properties > Format > Render Region); turn Render Region off, the farm sets each tile's region itself`,
        );
    return problems;
}
