// AWS prices a quote uses: Lambda's duration price (x86, per GB-second) by region, and the per-request prices of
// Lambda, SQS and API Gateway. One table, with where it comes from: check it against the source before relying on a
// quote in a region it does not list (those are priced at us-east-1's, and the quote says so).
import { LAMBDA_X86_USD_PER_GB_SECOND } from "../functions/shared/contract";

export const PRICE_SOURCE =
    "https://aws.amazon.com/lambda/pricing/, https://aws.amazon.com/sqs/pricing/, https://aws.amazon.com/api-gateway/pricing/ (x86, first pricing tier; table of 2026-12-01)";

/** USD per GB-second of x86 Lambda duration, first tier, in the regions this table lists. */
const LAMBDA_USD_PER_GB_SECOND: Record<string, number> = {
    "us-east-1": LAMBDA_X86_USD_PER_GB_SECOND,
    "us-east-2": 0.0000166667,
    "us-west-1": 0.0000166667,
    "us-west-2": 0.0000166667,
    "eu-west-1": 0.0000166667,
    "eu-west-2": 0.0000166667,
    "eu-central-1": 0.0000166667,
    "ap-northeast-1": 0.0000166667,
    "ap-southeast-1": 0.0000166667,
    "ap-southeast-2": 0.0000166667,
};

/** Per-request prices, USD (first tier). */
export const REQUEST_PRICES = {
    lambdaPerRequest: 0.2 / 1e6,
    /** SQS standard queue, per request (64 KB chunk). */
    sqsPerRequest: 0.4 / 1e6,
    /** A frame's SQS requests: its share of a SendMessageBatch, the event source's receive, its delete, and about one more. */
    sqsMessagesPerFrame: 3,
    /** HTTP API, per request. */
    apiGatewayPerRequest: 1.0 / 1e6,
};

export function lambdaPriceFor(region: string): { usdPerGbSecond: number; region: string; source: string } {
    const known = LAMBDA_USD_PER_GB_SECOND[region];
    if (known !== undefined) return { usdPerGbSecond: known, region, source: PRICE_SOURCE };
    return {
        usdPerGbSecond: LAMBDA_USD_PER_GB_SECOND["us-east-1"],
        region,
        source: `${PRICE_SOURCE}; ${region} is not in the table: priced at us-east-1's`,
    };
}
