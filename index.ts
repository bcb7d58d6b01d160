// The render farm stack: read the config once, build one RenderFarm, export what other stacks and the CLI consume.
import * as aws from "@pulumi/aws";
import { readFarmConfig } from "./config";
import { RenderFarm } from "./components/renderFarm";

const farm = new RenderFarm("render-farm", readFarmConfig());

export const apiUrl = farm.apiUrl;
export const scenesBucket = farm.scenesBucket;
export const rendersBucket = farm.rendersBucket;
export const frameQueueUrl = farm.frameQueueUrl;
export const deadLetterQueueUrl = farm.deadLetterQueueUrl;
export const rendererFunctionName = farm.rendererFunctionName;
export const jobApiFunctionName = farm.jobApiFunctionName;
export const imageUri = farm.imageUri;
export const region = aws.getRegionOutput({}, { parent: farm }).region;
