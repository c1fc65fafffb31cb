// The page's clients of the contract, all through the console's bridge, and
// how their failures are put in words.

import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import { ProcessorService } from "./gen/quoteflow/processor/v1/processor_service_pb.js";
import { QuoteService } from "./gen/quoteflow/quote/v1/quote_service_pb.js";
import { RequestorService } from "./gen/quoteflow/requestor/v1/requestor_service_pb.js";
import { durationSeconds, seconds } from "./format.js";
import { bearerToken } from "./token.js";

// Connect over fetch: server streams arrive as the response body streams, over
// HTTP/1.1 as over HTTP/2, with no trailers for a browser to miss.
const transport = createConnectTransport({
  baseUrl: window.location.origin,
  useBinaryFormat: true,
  interceptors: [bearerToken],
});

export const quote: Client<typeof QuoteService> = createClient(QuoteService, transport);
export const processor: Client<typeof ProcessorService> = createClient(ProcessorService, transport);
export const requestor: Client<typeof RequestorService> = createClient(RequestorService, transport);

const CODE_WORDS: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: "Some fields are not valid",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.FailedPrecondition]: "Not possible now",
  [Code.ResourceExhausted]: "Too busy",
  [Code.Unavailable]: "Unavailable",
  [Code.DeadlineExceeded]: "No answer in time",
  [Code.OutOfRange]: "Out of range",
  [Code.Internal]: "Internal error",
  [Code.Unknown]: "Unknown error",
  [Code.Canceled]: "Cancelled",
  [Code.Unauthenticated]: "Not signed in (give an access token above)",
  [Code.PermissionDenied]: "Not allowed for your token's roles",
};

export interface Described {
  /** One sentence for a person: what went wrong, in words. */
  text: string;
  code: Code;
  /** Field path (e.g. "submission.coverage_amount") → what is wrong with it. */
  violations: Map<string, string>;
  /** Seconds the service asks the caller to wait (RESOURCE_EXHAUSTED), if it said. */
  retryAfter: number | undefined;
  /** The ErrorInfo's reason ("QUEUE_FULL", …), if any. */
  reason: string | undefined;
}

export function describe(error: unknown): Described {
  const failure = ConnectError.from(error);
  const violations = new Map<string, string>();
  for (const badRequest of failure.findDetails(BadRequestSchema)) {
    for (const violation of badRequest.fieldViolations) {
      violations.set(violation.field, violation.description);
    }
  }
  const retry = failure.findDetails(RetryInfoSchema)[0];
  const retryAfter = retry?.retryDelay ? durationSeconds(retry.retryDelay) : undefined;
  const reason = failure.findDetails(ErrorInfoSchema)[0]?.reason;
  let text = `${CODE_WORDS[failure.code] ?? Code[failure.code]}: ${failure.rawMessage || "no message"}`;
  // fetch's own failure (the console itself is away), however the browser words it.
  if (/failed to fetch|networkerror|load failed|network error/i.test(failure.rawMessage)) {
    text = `The console is unreachable (${failure.rawMessage}); is it running?`;
  }
  if (retryAfter !== undefined) text += ` Try again in ${seconds(retryAfter)}.`;
  return { text, code: failure.code, violations, retryAfter, reason };
}

/** Whether a stream that ended with this error is worth opening again. */
export function retryable(error: unknown): boolean {
  const { code } = ConnectError.from(error);
  return [Code.Unavailable, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.ResourceExhausted, Code.Aborted].includes(code);
}

export function isAbort(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Canceled;
}

/** Wait ms milliseconds, or less if signal aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      window.clearTimeout(timer);
      resolve();
    });
  });
}

/** Reconnect delays: quick at first, then at most 5 s apart. */
export function backoff(attempt: number): number {
  return Math.min(250 * 2 ** attempt, 5000);
}

/**
 * Keep a stream open until it is over or the page stops it (signal): open
 * runs one stream to its end and answers whether the watch is over; a
 * retryable failure opens it again after a growing backoff, which `live`
 * (called once a message arrives) resets. report shows where it stands: a
 * failure that is not retryable in words, or `lost(reason, seconds)` while it
 * waits to reconnect.
 */
export async function keepStreaming(
  signal: AbortSignal,
  open: (reconnecting: boolean, live: () => void) => Promise<boolean>,
  report: (text: string) => void,
  lost: (reason: string, seconds: string) => string,
): Promise<void> {
  let attempt = 0;
  const live = (): void => {
    attempt = 0;
  };
  while (!signal.aborted) {
    try {
      if (await open(attempt > 0, live)) return;
    } catch (error) {
      if (signal.aborted || isAbort(error)) return;
      const described = describe(error);
      if (!retryable(error)) {
        report(described.text);
        return;
      }
      const wait = backoff(attempt++);
      report(lost(described.text, (wait / 1000).toFixed(1)));
      await pause(wait, signal);
    }
  }
}
