// Follow a message live through WatchMessage: its status timeline, its result,
// and what can be done to it (cancel, redrive, review).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  MessageStatus,
  ReviewDecision,
  type QueueMessage,
} from "../gen/quoteflow/quote/v1/quote_service_pb.js";
import { facts, field, h, replace, type Fact } from "../dom.js";
import {
  FINAL_STATUSES,
  money,
  priorityWords,
  statusClass,
  statusWords,
  time,
} from "../format.js";
import { describe, keepStreaming, quote } from "../rpc.js";
import { alertText, type View } from "./view.js";

function clock(date: Date): string {
  return date.toLocaleTimeString(undefined, {
    hour12: false,
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    fractionalSecondDigits: 3,
  });
}

interface Moment {
  status: MessageStatus;
  /** When the page saw it. */
  seen: Date;
  /** When the service says it happened, where the message tells. */
  at: Date | undefined;
  note: string;
}

export class FollowView implements View {
  readonly name = "follow";
  readonly title = "Follow a message";
  readonly element: HTMLElement;
  private readonly idInput: HTMLInputElement;
  private readonly connection: HTMLElement;
  private readonly timeline: HTMLOListElement;
  private readonly detail: HTMLElement;
  private watching: AbortController | undefined;
  private moments: Moment[] = [];
  private current: QueueMessage | undefined;

  constructor() {
    this.idInput = h("input", { id: "follow-id", name: "follow-id", autocomplete: "off", spellcheck: "false" });
    const form = h(
      "form",
      {
        class: "inline",
        onsubmit: (event) => {
          event.preventDefault();
          window.location.hash = `#/follow/${encodeURIComponent(this.idInput.value.trim())}`;
        },
      },
      field("Message id", this.idInput),
      h("button", { type: "submit" }, "Follow"),
    );
    this.connection = h("p", { id: "follow-connection", class: "connection", role: "status" });
    this.timeline = h("ol", { id: "timeline", class: "timeline", "aria-label": "Status timeline" });
    this.detail = h("div", { id: "message-detail" });
    this.element = h(
      "section",
      { "aria-labelledby": "follow-title" },
      h("h2", { id: "follow-title" }, this.title),
      form,
      this.connection,
      h("h3", {}, "Timeline"),
      this.timeline,
      this.detail,
    );
  }

  show(argument: string): void {
    const id = decodeURIComponent(argument);
    if (id === "" || (this.watching && this.current?.id === id)) {
      this.idInput.value = id || this.idInput.value;
      return;
    }
    this.stop();
    this.idInput.value = id;
    this.moments = [];
    this.current = undefined;
    replace(this.timeline);
    replace(this.detail);
    this.watching = new AbortController();
    void this.watch(id, this.watching.signal);
  }

  hide(): void {
    // Kept open while the page shows another view? No: a stream per view shown,
    // so the browser's few connections per host are not held by hidden views.
    this.stop();
  }

  private stop(): void {
    this.watching?.abort();
    this.watching = undefined;
  }

  /** Watch until the message is final; a broken stream is opened again, and
   * since WatchMessage first sends the message as it is now, nothing is missed. */
  private async watch(id: string, signal: AbortSignal): Promise<void> {
    const say = (text: string): void => {
      this.connection.textContent = text;
    };
    await keepStreaming(
      signal,
      async (reconnecting, live) => {
        say(reconnecting ? "Reconnecting…" : "Connecting…");
        for await (const { message } of quote.watchMessage({ id }, { signal })) {
          live();
          say("Live: updates arrive as they happen.");
          if (message) this.update(message);
        }
        const final = this.current !== undefined && FINAL_STATUSES.has(this.current.status);
        say(final ? "Final: the message will not change again." : "The stream ended.");
        return final;
      },
      say,
      (reason, seconds) => `Connection lost (${reason}); reconnecting in ${seconds} s.`,
    );
  }

  private update(message: QueueMessage): void {
    const previous = this.moments.at(-1);
    const changed =
      previous === undefined ||
      previous.status !== message.status ||
      (this.current !== undefined && this.current.retryCount !== message.retryCount);
    this.current = message;
    if (changed) {
      const at =
        message.status === MessageStatus.PENDING
          ? message.createdAt
          : message.status === MessageStatus.PROCESSING
            ? message.startedAt
            : message.completedAt;
      const moment: Moment = {
        status: message.status,
        seen: new Date(),
        at: at ? timestampDate(at) : undefined,
        note:
          message.retryCount > 0 && message.status === MessageStatus.PENDING
            ? `retry ${message.retryCount} of ${message.maxRetries}: ${message.errorMessage}`
            : "",
      };
      this.moments.push(moment);
      this.timeline.append(
        h(
          "li",
          // data-seen: when the page showed it (ms since the epoch), against the
          // service's own time in <time>: the latency the figures measure.
          { "data-status": MessageStatus[message.status] ?? "", "data-seen": String(moment.seen.getTime()) },
          h("span", { class: statusClass(message.status) }, statusWords(message.status)),
          " ",
          h("time", { datetime: (moment.at ?? moment.seen).toISOString() }, clock(moment.at ?? moment.seen)),
          moment.note ? h("span", { class: "note" }, ` ${moment.note}`) : null,
        ),
      );
    }
    this.render(message);
  }

  private render(message: QueueMessage): void {
    const result = message.result;
    const rows: Fact[] = [
      ["Id", h("code", {}, message.id)],
      ["Status", h("span", { class: statusClass(message.status), id: "message-status" }, statusWords(message.status))],
      ["Applicant", message.payload?.applicantName ?? "—"],
      ["Address", message.payload?.address ?? "—"],
      ["Coverage", message.payload ? message.payload.coverageAmount.toLocaleString() : "—"],
      ["Priority", priorityWords(message.priority)],
      // While pending, the priority aging serves it at.
      ["Served at", message.effectivePriority ? priorityWords(message.effectivePriority) : "—", "message-effective-priority"],
      ["Fairness key", message.fairnessKey || "none", "message-fairness-key"],
      ["Scheduled for", message.scheduleTime ? time(message.scheduleTime) : "not scheduled", "message-schedule-time"],
      ["Pipeline", message.useAgentic ? "step-by-step underwriting" : "single-step rating"],
      ["Created", time(message.createdAt)],
      ["Started", time(message.startedAt)],
      ["Finished", time(message.completedAt)],
      ["Retries", `${message.retryCount} of ${message.maxRetries}`],
      ["Next attempt", time(message.nextAttemptAt)],
      ["Last error", message.errorMessage || "none"],
      ["Dead-lettered", message.deadLettered ? "yes" : "no"],
    ];
    const sections: Node[] = [
      h("h3", {}, "Message"),
      facts({}, rows),
      this.actions(message),
    ];
    if (result) {
      sections.push(
        h("h3", {}, "Premium"),
        facts({ id: "premium" }, [
          ["Annual premium", money(result.annualPremiumCents), "annual-premium"],
          ["Base rate per 1,000", money(result.baseRatePerThousandCents)],
          ["Base premium", money(result.basePremiumCents)],
          ["Risk score", String(result.riskScore)],
          ["Priced by", result.processor],
          ["Review needed", result.reviewReason || "no"],
        ]),
        h(
          "div",
          { class: "scroll" },
          h(
            "table",
            { id: "factors" },
            h("caption", {}, "Factors, in the order applied"),
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Factor"), h("th", { scope: "col" }, "Multiplier"), h("th", { scope: "col" }, "Reason"))),
            h("tbody", {}, ...result.factors.map((f) => h("tr", {}, h("td", {}, f.name), h("td", {}, `×${f.multiplier.toFixed(3)}`), h("td", {}, f.reason)))),
          ),
        ),
      );
      if (result.steps.length > 0) {
        sections.push(
          h("h3", {}, "Underwriting steps"),
          h("ol", { id: "steps" }, ...result.steps.map((s) => h("li", {}, h("strong", {}, s.name), `: ${s.outcome} (${time(s.completedAt)})`))),
        );
      }
    }
    if (message.review) {
      const review = message.review;
      sections.push(
        h("h3", {}, "Review"),
        facts({ id: "review" }, [
          ["Decision", review.decision === ReviewDecision.APPROVE ? "approved" : "rejected"],
          ["Reviewer", review.reviewer],
          ["Note", review.note || "—"],
          ["When", time(review.reviewedAt)],
        ]),
      );
    }
    replace(this.detail, ...sections);
  }

  private actions(message: QueueMessage): HTMLElement {
    const box = h("div", { class: "actions", id: "message-actions" });
    if (!FINAL_STATUSES.has(message.status)) {
      box.append(h("button", { type: "button", id: "cancel-message", onclick: () => void this.act(() => quote.cancelMessage({ id: message.id }), "Cancelled.") }, "Cancel"));
    }
    if (message.deadLettered) {
      box.append(h("button", { type: "button", id: "redrive-message", onclick: () => void this.redrive(message.id) }, "Redrive"));
    }
    if (message.status === MessageStatus.AWAITING_REVIEW) {
      const reviewer = h("input", { id: "reviewer", name: "reviewer", autocomplete: "name" });
      const note = h("textarea", { id: "review-note", name: "review-note", rows: "2" });
      const decide = (decision: ReviewDecision) => (event: Event) => {
        event.preventDefault();
        void this.act(
          () => quote.reviewQuote({ id: message.id, decision, reviewer: reviewer.value, note: note.value }),
          decision === ReviewDecision.APPROVE ? "Approved." : "Rejected.",
        );
      };
      box.append(
        h(
          "form",
          { id: "review-form", class: "review" },
          h("fieldset", {}, h("legend", {}, "Review"),
            field("Reviewer", reviewer),
            field("Note", note),
            h("button", { type: "submit", id: "approve", onclick: decide(ReviewDecision.APPROVE) }, "Approve"),
            " ",
            h("button", { type: "button", id: "reject", onclick: decide(ReviewDecision.REJECT) }, "Reject"),
          ),
        ),
      );
    }
    box.append(h("p", { id: "action-outcome", "aria-live": "polite" }));
    return box;
  }

  private async act(call: () => Promise<unknown>, done: string): Promise<void> {
    alertText("");
    try {
      await call();
      const outcome = document.getElementById("action-outcome");
      if (outcome) outcome.textContent = done;
    } catch (error) {
      alertText(describe(error).text);
    }
  }

  /** A redriven message's stream had ended at FAILED: watch it again. */
  private async redrive(id: string): Promise<void> {
    await this.act(() => quote.redriveMessage({ id }), "Redriven: it is pending again.");
    if (this.watching === undefined || this.current?.id === id) {
      this.watching?.abort();
      this.watching = new AbortController();
      void this.watch(id, this.watching.signal);
    }
  }
}
