// The render farm stack: read the config once, build one RenderFarm, export what other stacks and the CLI consume
// (the stack outputs: STACK_OUTPUT_NAMES in functions/shared/contract/stackOutputs.ts).
import { RenderFarm } from "./components/renderFarm";
import { readFarmConfig } from "./config";

export = new RenderFarm("render-farm", readFarmConfig()).outputs;
