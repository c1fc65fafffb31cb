// Words and numbers as the page shows them.

import { timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { MessageStatus, Priority } from "./gen/quoteflow/quote/v1/quote_service_pb.js";
import { OrderEventKind } from "./gen/quoteflow/processor/v1/processor_service_pb.js";
import { TaskPriority, TaskStatus } from "./gen/quoteflow/requestor/v1/requestor_service_pb.js";

/** The enum value's name in words: MessageStatus.AWAITING_REVIEW is "awaiting review". */
function words(names: Record<number, string>, value: number): string {
  const name = names[value];
  return name === undefined ? `unknown (${value})` : name.toLowerCase().replaceAll("_", " ");
}

export const statusWords = (status: MessageStatus): string => words(MessageStatus, status);
export const priorityWords = (priority: Priority): string => words(Priority, priority);
export const taskStatusWords = (status: TaskStatus): string => words(TaskStatus, status);
export const taskPriorityWords = (priority: TaskPriority): string => words(TaskPriority, priority);
export const eventKindWords = (kind: OrderEventKind): string => words(OrderEventKind, kind);

/** Status classes colour the badge; the badge's text says the same in words. */
export function statusClass(status: MessageStatus): string {
  return `badge status-${MessageStatus[status]?.toLowerCase() ?? "unknown"}`;
}

export const FINAL_STATUSES: ReadonlySet<MessageStatus> = new Set([
  MessageStatus.COMPLETED,
  MessageStatus.FAILED,
  MessageStatus.CANCELLED,
  MessageStatus.REJECTED,
]);

export function time(timestamp: Timestamp | undefined): string {
  if (timestamp === undefined) return "—";
  return timestampDate(timestamp).toLocaleString(undefined, {
    hour12: false,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    fractionalSecondDigits: 3,
  });
}

export function durationSeconds(duration: Duration | undefined): number {
  if (duration === undefined) return 0;
  return Number(duration.seconds) + duration.nanos / 1e9;
}

export function seconds(value: number): string {
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

export function money(cents: bigint): string {
  return (Number(cents) / 100).toLocaleString(undefined, {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
}
