// The queue dashboard. The quote queue's counts are pushed by WatchStats while
// the view is shown; the processor's and the requestor's contracts stream no
// counts, so theirs are read every REFRESH_MS, and only while shown.

import type { GetStatsResponse } from "../gen/quoteflow/quote/v1/quote_service_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { field, h, replace } from "../dom.js";
import { priorityWords, seconds } from "../format.js";
import { describe, keepStreaming, processor, quote, requestor } from "../rpc.js";
import type { View } from "./view.js";

const REFRESH_MS = 2000;
/** The quote queue's counts arrive at most this often, however busy it is. */
const STATS_INTERVAL_MS = 1000;
/** The chart's window: the last five minutes of samples. */
const HISTORY_MS = 5 * 60 * 1000;

interface Sample {
  at: number;
  depth: number;
  /** Messages that reached a final state since the previous sample, per second. */
  throughput: number;
  finished: number;
}

function finished(stats: GetStatsResponse): number {
  return Number(stats.completedCount + stats.failedCount + stats.cancelledCount + stats.rejectedCount);
}

function table(caption: string, id: string, rows: Array<[string, string]>): HTMLElement {
  return h(
    "table",
    { id, class: "counts" },
    h("caption", {}, caption),
    h("tbody", {}, ...rows.map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", { "data-count": name }, value)))),
  );
}

export class DashboardView implements View {
  readonly name = "dashboard";
  readonly title = "Queue dashboard";
  readonly element: HTMLElement;
  private readonly quoteBox: HTMLElement;
  private readonly chart: HTMLElement;
  private readonly others: HTMLElement;
  private readonly updated: HTMLElement;
  private timer: number | undefined;
  private watching: AbortController | undefined;
  private samples: Sample[] = [];

  constructor() {
    this.updated = h("p", { id: "dashboard-updated", role: "status" });
    this.quoteBox = h("div", { id: "quote-stats", class: "cards" });
    this.chart = h("figure", { id: "queue-chart" });
    this.others = h("div", { id: "other-stats", class: "cards" });
    this.element = h(
      "section",
      { "aria-labelledby": "dashboard-title" },
      h("h2", { id: "dashboard-title" }, this.title),
      this.updated,
      this.quoteBox,
      this.chart,
      h("h3", {}, "Rate limit per fairness key"),
      this.rateLimitForm(),
      h("h3", {}, "Orders"),
      this.others,
    );
  }

  /** SetRateLimit: a key's messages start at most per_second (0 lifts the limit). */
  private rateLimitForm(): HTMLElement {
    const outcome = h("p", { id: "rate-limit-outcome", role: "status" });
    const input = (id: string, label: string, attributes: Record<string, string>): HTMLElement =>
      field(label, h("input", { id, name: id, ...attributes }));
    const form = h(
      "form",
      {
        id: "rate-limit-form",
        novalidate: true,
        onsubmit: (event: Event) => {
          event.preventDefault();
          void this.setRateLimit(form, outcome);
        },
      },
      input("limit-key", "Fairness key (empty: messages without one)", { autocomplete: "off" }),
      input("limit-rate", "Per second (0 lifts the limit)", { type: "number", min: "0", step: "any", value: "1" }),
      input("limit-burst", "Burst (0: the rate, rounded up)", { type: "number", min: "0", step: "1", value: "0" }),
      h("button", { type: "submit", id: "rate-limit-button" }, "Set limit"),
    );
    return h("div", {}, form, outcome);
  }

  private async setRateLimit(form: HTMLFormElement, outcome: HTMLElement): Promise<void> {
    const read = (id: string): string => (form.querySelector(`#${id}`) as HTMLInputElement).value.trim();
    try {
      const answer = await quote.setRateLimit({
        fairnessKey: read("limit-key"),
        perSecond: Number(read("limit-rate")),
        burst: Number(read("limit-burst")) || 0,
      });
      const key = answer.fairnessKey || "(none)";
      outcome.textContent =
        answer.perSecond === 0
          ? `Key ${key}: no rate limit.`
          : `Key ${key}: at most ${answer.perSecond} a second, burst ${answer.burst}.`;
      outcome.className = "";
    } catch (error) {
      outcome.textContent = describe(error).text;
      outcome.className = "error";
    }
  }

  show(): void {
    if (this.timer !== undefined) return;
    this.watching = new AbortController();
    void this.watchQuote(this.watching.signal);
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  hide(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
    this.watching?.abort();
    this.watching = undefined;
  }

  private async watchQuote(signal: AbortSignal): Promise<void> {
    const say = (text: string): void => {
      this.updated.textContent = text;
    };
    const interval = { seconds: BigInt(Math.floor(STATS_INTERVAL_MS / 1000)), nanos: (STATS_INTERVAL_MS % 1000) * 1_000_000 };
    const request = { minInterval: interval };
    await keepStreaming(
      signal,
      async (reconnecting, live) => {
        if (reconnecting) say("Reconnecting to the quote service…");
        for await (const { stats } of quote.watchStats(request, { signal })) {
          live();
          say(`Live: updated ${new Date().toLocaleTimeString(undefined, { hour12: false })} as the queue changes.`);
          if (stats) this.renderQuote(stats);
        }
        return false;
      },
      (text) => replace(this.quoteBox, h("p", { class: "error" }, text)),
      (reason, wait) => `Connection lost (${reason}); reconnecting in ${wait} s.`,
    );
  }

  private async refresh(): Promise<void> {
    const [p, r] = await Promise.allSettled([processor.getStats({}), requestor.getStats({})]);
    const cards: Node[] = [];
    if (p.status === "fulfilled") {
      const s = p.value;
      cards.push(table("Processor", "processor-stats", [
        ["order queues", String(s.orderQueuesCount)],
        ["events", String(s.eventsCount)],
        ["watchers", String(s.watchersCount)],
        ["proposals being priced", String(s.proposalsInFlight)],
        ["orders awaited", String(s.awaitedOrdersCount)],
      ]));
    } else cards.push(h("p", { class: "error" }, describe(p.reason).text));
    if (r.status === "fulfilled") {
      const s = r.value;
      cards.push(table("Requestor", "requestor-stats", [
        ["tasks queued", String(s.priorityQueueSize)],
        ["of which waiting for their order", String(s.waitingTasks)],
        ["tasks running", String(s.activeTasks)],
        ["tasks finished", String(s.completedTasks)],
        ["max concurrent tasks", String(s.maxConcurrentTasks)],
      ]));
    } else cards.push(h("p", { class: "error" }, describe(r.reason).text));
    replace(this.others, ...cards);
  }

  private renderQuote(stats: GetStatsResponse): void {
    const now = Date.now();
    const previous = this.samples.at(-1);
    const done = finished(stats);
    const throughput = previous ? Math.max(0, done - previous.finished) / ((now - previous.at) / 1000) : 0;
    this.samples.push({ at: now, depth: Number(stats.pendingCount + stats.processingCount), throughput, finished: done });
    this.samples = this.samples.filter((s) => now - s.at <= HISTORY_MS);
    const oldest = stats.oldestPending ? seconds((now - timestampDate(stats.oldestPending).getTime()) / 1000) : "none pending";
    replace(
      this.quoteBox,
      table("By status", "status-counts", [
        ["pending", String(stats.pendingCount)],
        ["processing", String(stats.processingCount)],
        ["awaiting review", String(stats.awaitingReviewCount)],
        ["completed", String(stats.completedCount)],
        ["failed", String(stats.failedCount)],
        ["cancelled", String(stats.cancelledCount)],
        ["rejected", String(stats.rejectedCount)],
      ]),
      h(
        "table",
        { id: "priority-counts", class: "counts" },
        h("caption", {}, "By priority"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Priority"), h("th", { scope: "col" }, "Pending"), h("th", { scope: "col" }, "Processing"))),
        h("tbody", {}, ...stats.byPriority.map((p) => h("tr", {}, h("th", { scope: "row" }, priorityWords(p.priority)), h("td", {}, String(p.pendingCount)), h("td", {}, String(p.processingCount))))),
      ),
      table("Queue", "queue-facts", [
        ["dead letters", String(stats.deadLetterCount)],
        ["oldest pending", oldest],
        ["longest processing", stats.longestProcessingSeconds > 0 ? seconds(stats.longestProcessingSeconds) : "none running"],
        ["workers", String(stats.workers)],
        ["max size", String(stats.maxSize)],
      ]),
      table(
        "Busiest fairness keys (pending)",
        "key-counts",
        stats.busiestKeys.length
          ? stats.busiestKeys.map((k) => [k.fairnessKey || "(none)", String(k.pendingCount)])
          : [["none pending", ""]],
      ),
    );
    this.renderChart(now);
  }

  /** Depth and throughput over the window, as two lines of one SVG chart. */
  private renderChart(now: number): void {
    const width = 600;
    const height = 160;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    const last = this.samples.at(-1);
    svg.setAttribute("aria-label", `Queue depth now ${last?.depth ?? 0}, throughput ${(last?.throughput ?? 0).toFixed(1)} per second`);
    const top = Math.max(1, ...this.samples.map((s) => Math.max(s.depth, s.throughput)));
    const x = (at: number) => width - ((now - at) / HISTORY_MS) * width;
    const y = (value: number) => height - 4 - (value / top) * (height - 20);
    for (const [key, colour] of [["depth", "#1d4ed8"], ["throughput", "#b45309"]] as const) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", this.samples.map((s) => `${x(s.at).toFixed(1)},${y(s[key]).toFixed(1)}`).join(" "));
      line.setAttribute("fill", "none");
      line.setAttribute("stroke", colour);
      line.setAttribute("stroke-width", "2");
      svg.append(line);
    }
    const scale = document.createElementNS(ns, "text");
    scale.setAttribute("x", "4");
    scale.setAttribute("y", "12");
    scale.setAttribute("font-size", "11");
    scale.textContent = `max ${top.toFixed(top < 10 ? 1 : 0)}`;
    const ago = document.createElementNS(ns, "text");
    ago.setAttribute("x", "4");
    ago.setAttribute("y", String(height - 6));
    ago.setAttribute("font-size", "11");
    ago.textContent = "5 min ago";
    const nowLabel = document.createElementNS(ns, "text");
    nowLabel.setAttribute("x", String(width - 4));
    nowLabel.setAttribute("y", String(height - 6));
    nowLabel.setAttribute("font-size", "11");
    nowLabel.setAttribute("text-anchor", "end");
    nowLabel.textContent = "now";
    svg.append(scale, ago, nowLabel);
    replace(
      this.chart,
      svg,
      h("figcaption", {}, h("span", { class: "key depth" }, "queue depth (pending + processing)"), " ", h("span", { class: "key throughput" }, "throughput (finished per second)"), " over the last 5 minutes"),
    );
  }
}
