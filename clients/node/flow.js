#!/usr/bin/env node
// The whole quoteflow flow from Node.js, with @grpc/grpc-js and stubs loaded at run
// time by @grpc/proto-loader from the same proto/ files the Python services are
// generated from: no build step, no generated code.
//
//   node clients/node/flow.js [--quote ADDR] [--processor ADDR] [--requestor ADDR]
//                             [--order ID] [--timeout SECONDS] [--wait SECONDS]
//                             [--token TOKEN] [--ca-file FILE]
//                             [--cert-file FILE --key-file FILE]
//
// Addresses default to $QUOTEFLOW_QUOTE_ADDRESS, $QUOTEFLOW_PROCESSOR_ADDRESS and
// $QUOTEFLOW_REQUESTOR_ADDRESS, then to where `make run` serves (127.0.0.1:5005x),
// as the Python CLI does. As the CLI does too, --token (default $QUOTEFLOW_TOKEN) is
// sent as `authorization: Bearer <token>` metadata with every call, --ca-file turns
// TLS on (the CA that signed the services' certificates), and --cert-file with
// --key-file present a client certificate (mTLS).
//
// It submits a quote and watches it to COMPLETED, places an order with the
// requestor, submits three proposals to the processor, completes the order, polls
// the task until it is final, and prints a JSON summary on stdout (exit 0). Any
// failure prints one line on stderr and exits 1 (2 for a bad option or file).
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');
const PROTO_FILES = [
  'quoteflow/quote/v1/quote_service.proto',
  'quoteflow/processor/v1/processor_service.proto',
  'quoteflow/requestor/v1/requestor_service.proto',
];

// Field names as in proto3 JSON (lowerCamelCase, the default), int64 as strings and
// enums by name, so what this prints reads like `buf curl`'s answers. The imports of
// google/protobuf/{timestamp,duration}.proto need no include path: protobufjs carries
// the well-known types.
const LOADER_OPTIONS = {
  includeDirs: [PROTO_ROOT],
  longs: String,
  enums: String,
  defaults: true,
};

const FINAL_MESSAGE_STATUSES = new Set([
  'MESSAGE_STATUS_COMPLETED',
  'MESSAGE_STATUS_FAILED',
  'MESSAGE_STATUS_CANCELLED',
  'MESSAGE_STATUS_REJECTED',
]);
const FINAL_TASK_STATUSES = new Set([
  'TASK_STATUS_SUCCEEDED',
  'TASK_STATUS_FAILED',
  'TASK_STATUS_CANCELLED',
  'TASK_STATUS_TIMED_OUT',
]);
const FAIRNESS_KEY = 'node-client';
const PROPOSALS = [
  { proposalId: 'PROP-S', coverageAmount: 80000 },
  { proposalId: 'PROP-M', coverageAmount: 400000 },
  { proposalId: 'PROP-L', coverageAmount: 1500000 },
];
const POLL_MS = 100;

// grpc-js names the server in TLS's SNI even when it is an IP address (as the default
// 127.0.0.1 is), and Node warns of that (DEP0123) on stderr: nothing the person running
// this can act on, and it would break the one line of a failure. That warning alone is
// dropped; every other still shows.
const emitWarning = process.emitWarning;
process.emitWarning = function emitWarningButDep0123(warning, ...rest) {
  const code = typeof rest[0] === 'object' && rest[0] !== null ? rest[0].code : rest[1];
  if (code === 'DEP0123') return undefined;
  return emitWarning.call(process, warning, ...rest);
};

// grpc.status maps names to numbers; this maps them back, for messages.
const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

const USAGE = `usage: node clients/node/flow.js [--quote ADDR] [--processor ADDR] [--requestor ADDR]
                           [--order ID] [--timeout SECONDS] [--wait SECONDS]
                           [--token TOKEN] [--ca-file FILE] [--cert-file FILE --key-file FILE]`;

const env = process.env;
const OPTIONS = {
  quote: { type: 'string', default: env.QUOTEFLOW_QUOTE_ADDRESS || '127.0.0.1:50051' },
  processor: { type: 'string', default: env.QUOTEFLOW_PROCESSOR_ADDRESS || '127.0.0.1:50052' },
  requestor: { type: 'string', default: env.QUOTEFLOW_REQUESTOR_ADDRESS || '127.0.0.1:50053' },
  order: { type: 'string', default: `ORD-NODE-${process.pid}-${Date.now()}` },
  // Deadline of each request-response call, in seconds.
  timeout: { type: 'string', default: '10' },
  // How long the quote's watch, and the polling of the task, may take in all.
  wait: { type: 'string', default: '60' },
  // Sent as `authorization: Bearer <token>` with every call; none when empty.
  token: { type: 'string', default: env.QUOTEFLOW_TOKEN || '' },
  // TLS: the CA (PEM) of the services' certificates; mTLS: this client's certificate and key.
  'ca-file': { type: 'string', default: '' },
  'cert-file': { type: 'string', default: '' },
  'key-file': { type: 'string', default: '' },
  help: { type: 'boolean', short: 'h', default: false },
};

class FlowError extends Error {}
class UsageError extends FlowError {}

function options() {
  let values;
  try {
    ({ values } = parseArgs({ options: OPTIONS }));
  } catch (error) {
    throw new UsageError(error.message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  for (const name of ['timeout', 'wait']) {
    const seconds = Number(values[name]);
    if (!(seconds > 0)) throw new UsageError(`--${name} must be a positive number of seconds`);
    values[name] = seconds * 1000; // milliseconds from here on
  }
  values.token = values.token.trim();
  // A metadata value is printable ASCII; a JWT has no spaces either.
  if (/[^\x21-\x7e]/.test(values.token)) {
    throw new UsageError(
      "--token is not a token: give the token alone, without spaces or 'Bearer '",
    );
  }
  values.credentials = channelCredentials(values);
  return values;
}

function readPem(option, file) {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new UsageError(`--${option} ${file}: cannot read it (${error.code ?? error.message})`);
  }
}

// Plaintext, or TLS with --ca-file (and a client certificate with --cert-file and --key-file).
function channelCredentials(values) {
  const ca = values['ca-file'];
  const cert = values['cert-file'];
  const key = values['key-file'];
  if (Boolean(cert) !== Boolean(key)) {
    throw new UsageError(
      '--cert-file and --key-file go together: a client certificate and its key',
    );
  }
  if (cert && !ca) {
    throw new UsageError(
      '--cert-file and --key-file need --ca-file: a client certificate is sent over TLS only',
    );
  }
  if (!ca) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    readPem('ca-file', ca),
    key ? readPem('key-file', key) : null,
    cert ? readPem('cert-file', cert) : null,
  );
}

function loadServices() {
  const definition = protoLoader.loadSync(
    PROTO_FILES.map((file) => path.join(PROTO_ROOT, file)),
    LOADER_OPTIONS,
  );
  const root = grpc.loadPackageDefinition(definition);
  return {
    QuoteService: root.quoteflow.quote.v1.QuoteService,
    ProcessorService: root.quoteflow.processor.v1.ProcessorService,
    RequestorService: root.quoteflow.requestor.v1.RequestorService,
  };
}

// A client whose unary calls return promises, each with a deadline and the token,
// and whose failures name the service, its address and the method.
function connect(name, Service, address, { timeout: timeoutMs, credentials, token }) {
  const client = new Service(address, credentials);
  // Per call, not call credentials: grpc-js would refuse those on a plaintext channel.
  const metadata = () => {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    return metadata;
  };
  const fail = (method, error) =>
    new FlowError(
      `${method} on the ${name} service at ${address} failed: ` +
        `${STATUS_NAMES[error.code] ?? error.code}: ${error.details || error.message}`,
    );
  return {
    client,
    call(method, request) {
      return new Promise((resolve, reject) => {
        client[method](
          request,
          metadata(),
          { deadline: Date.now() + timeoutMs },
          (error, response) => (error ? reject(fail(method, error)) : resolve(response)),
        );
      });
    },
    // A server-streaming call, read with for await; the deadline bounds the whole stream.
    async *stream(method, request, deadlineMs) {
      const call = client[method](request, metadata(), { deadline: Date.now() + deadlineMs });
      try {
        for await (const response of call) yield response;
      } catch (error) {
        throw fail(method, error);
      } finally {
        call.cancel(); // a no-op once the stream has ended; frees it if we stop early
      }
    },
  };
}

function submission(applicantName, coverageAmount) {
  return { applicantName, address: '1 Main St', coverageAmount };
}

async function quoteFlow(quote, waitMs) {
  // A fairness key: within a priority, the quote service serves keys in turn.
  const { message } = await quote.call('SubmitQuote', {
    submission: submission('Ada Lovelace', 250000),
    fairnessKey: FAIRNESS_KEY,
  });
  const statuses = [];
  let last = message;
  // WatchMessage sends the message as it is, then after each change, and ends once
  // the message is final.
  const watch = quote.stream('WatchMessage', { id: message.id }, waitMs);
  for await (const { message: watched } of watch) {
    statuses.push(watched.status);
    last = watched;
  }
  if (!FINAL_MESSAGE_STATUSES.has(last.status)) {
    throw new FlowError(`the watch of quote ${message.id} ended before the quote was final`);
  }
  if (last.status !== 'MESSAGE_STATUS_COMPLETED') {
    throw new FlowError(`quote ${message.id} ended ${last.status}: ${last.errorMessage}`);
  }
  return {
    id: last.id,
    status: last.status,
    statuses,
    fairnessKey: last.fairnessKey,
    premiumCents: last.result.annualPremiumCents,
  };
}

async function orderFlow(processor, requestor, order, waitMs) {
  const { taskId } = await requestor.call('PlaceOrder', {
    orderReqId: order,
    priority: 'TASK_PRIORITY_HIGH',
    fairnessKey: FAIRNESS_KEY,
    submission: submission('Ada Lovelace', 250000),
    timeout: { seconds: Math.ceil(waitMs / 1000) },
  });
  for (const { proposalId, coverageAmount } of PROPOSALS) {
    await processor.call('SubmitProposal', {
      orderReqId: order,
      proposalId,
      submission: submission(`Applicant ${proposalId}`, coverageAmount),
    });
  }
  // The order-completed event comes after every proposal's event, so the task has
  // all three once it has SUCCEEDED.
  await processor.call('CompleteOrder', { orderReqId: order });

  const deadline = Date.now() + waitMs;
  let result;
  for (;;) {
    ({ result } = await requestor.call('GetTaskResult', { taskId }));
    if (FINAL_TASK_STATUSES.has(result.status)) break;
    if (Date.now() > deadline) {
      throw new FlowError(`task ${taskId} still ${result.status} after ${waitMs / 1000} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (result.status !== 'TASK_STATUS_SUCCEEDED') {
    throw new FlowError(`task ${taskId} ended ${result.status}: ${result.errorMessage}`);
  }
  return {
    id: taskId,
    order,
    status: result.status,
    fairnessKey: result.fairnessKey,
    lastSequence: result.lastSequence,
    proposals: result.proposals.map((event) => ({
      proposalId: event.proposalId,
      sequence: event.sequence,
      text: event.text,
      status: event.quote.status,
      // Proposals sent without a key are priced under their order's id.
      fairnessKey: event.quote.fairnessKey,
      coverageAmount: event.quote.payload.coverageAmount,
      premiumCents: event.quote.result.annualPremiumCents,
    })),
  };
}

async function main() {
  const opts = options();
  const { QuoteService, ProcessorService, RequestorService } = loadServices();
  const quote = connect('quote', QuoteService, opts.quote, opts);
  const processor = connect('processor', ProcessorService, opts.processor, opts);
  const requestor = connect('requestor', RequestorService, opts.requestor, opts);
  try {
    const summary = {
      quote: await quoteFlow(quote, opts.wait),
      task: await orderFlow(processor, requestor, opts.order, opts.wait),
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    for (const service of [quote, processor, requestor]) service.client.close();
  }
}

main().catch((error) => {
  // One line: what failed and why. Anything but a FlowError is unexpected: say what.
  const text = error instanceof FlowError ? error.message : String(error?.stack ?? error);
  process.stderr.write(`flow.js: ${text.split('\n')[0].trim()}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
