// Orders: place one with the requestor, submit proposals to the processor,
// watch the order's events live (resuming from the last sequence seen), and
// read the task's result.

import { OrderEventKind, type OrderEvent } from "../gen/quoteflow/processor/v1/processor_service_pb.js";
import { TaskPriority, TaskStatus, type TaskResult } from "../gen/quoteflow/requestor/v1/requestor_service_pb.js";
import { facts, field, h, replace, select } from "../dom.js";
import { eventKindWords, money, taskPriorityWords, taskStatusWords, time } from "../format.js";
import { backoff, describe, keepStreaming, pause, processor, requestor } from "../rpc.js";
import { alertText, type View } from "./view.js";

const FINAL_TASK: ReadonlySet<TaskStatus> = new Set([TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT]);

function input(id: string, attributes: Record<string, string> = {}): HTMLInputElement {
  return h("input", { id, name: id, autocomplete: "off", ...attributes });
}

export class OrdersView implements View {
  readonly name = "orders";
  readonly title = "Orders";
  readonly element: HTMLElement;
  private readonly events: HTMLElement;
  private readonly connection: HTMLElement;
  private readonly task: HTMLElement;
  private readonly placed: HTMLElement;
  private readonly proposed: HTMLElement;
  private watching: AbortController | undefined;
  private watchedOrder = "";
  private lastSequence = 0n;
  private taskId = "";

  constructor() {
    const orderId = input("order-id", { value: `order-${Date.now().toString(36)}` });
    const priorities: Array<[string, string]> = [TaskPriority.LOW, TaskPriority.MEDIUM, TaskPriority.HIGH].map((p) => [String(p), taskPriorityWords(p)]);
    this.placed = h("p", { id: "place-outcome", "aria-live": "polite" });
    this.proposed = h("p", { id: "proposal-outcome", "aria-live": "polite" });
    this.connection = h("p", { id: "order-connection", class: "connection", role: "status" });
    this.events = h("ol", { id: "order-events", class: "timeline", "aria-label": "Order events" });
    this.task = h("div", { id: "task-result" });
    const order = () => orderId.value.trim();
    const proposalId = input("proposal-id", { value: "PROP1" });
    const applicant = input("proposal-applicant", { value: "Ada Lovelace" });
    const address = input("proposal-address", { value: "12 St James's Square, London" });
    const coverage = input("proposal-coverage", { type: "number", inputmode: "numeric", min: "1", value: "250000" });
    const agentic = h("input", { type: "checkbox", role: "switch", id: "proposal-agentic", name: "proposal-agentic" });
    const timeout = input("order-timeout", { type: "number", inputmode: "numeric", min: "1", value: "3600" });
    const taskPriority = select("order-priority", priorities, String(TaskPriority.MEDIUM));

    this.element = h(
      "section",
      { "aria-labelledby": "orders-title" },
      h("h2", { id: "orders-title" }, this.title),
      h("div", { class: "inline" }, field("Order id", orderId, "every form below acts on this order")),
      h(
        "div",
        { class: "columns" },
        h(
          "form",
          { id: "place-form", onsubmit: (event) => { event.preventDefault(); void this.place(order(), Number(taskPriority.value), Number(timeout.value)); } },
          h("h3", {}, "1. Place the order (requestor)"),
          field("Task priority", taskPriority),
          field("Timeout (seconds)", timeout),
          h("button", { type: "submit", id: "place-order" }, "Place order"),
          this.placed,
        ),
        h(
          "form",
          {
            id: "proposal-form",
            onsubmit: (event) => {
              event.preventDefault();
              void this.propose(order(), proposalId.value.trim(), applicant.value, address.value, coverage.value, agentic.checked);
            },
          },
          h("h3", {}, "2. Submit proposals (processor)"),
          field("Proposal id", proposalId),
          field("Applicant", applicant),
          field("Address", address),
          field("Coverage", coverage),
          h("div", { class: "field switch" }, agentic, h("label", { for: "proposal-agentic" }, "Step-by-step underwriting")),
          h("button", { type: "submit", id: "submit-proposal" }, "Submit proposal"),
          " ",
          h("button", { type: "button", id: "complete-order", onclick: () => void this.complete(order()) }, "Complete order"),
          this.proposed,
        ),
      ),
      h("h3", {}, "3. Watch the order (processor's WatchOrder)"),
      h("button", { type: "button", id: "watch-order", onclick: () => this.watch(order()) }, "Watch order"),
      this.connection,
      this.events,
      h("h3", {}, "4. The task's result (requestor)"),
      h("button", { type: "button", id: "get-task", onclick: () => void this.result() }, "Get result"),
      this.task,
    );
  }

  show(): void {}

  hide(): void {
    this.watching?.abort();
    this.watching = undefined;
  }

  private async place(order: string, priority: TaskPriority, timeoutSeconds: number): Promise<void> {
    alertText("");
    try {
      const answer = await requestor.placeOrder({
        orderReqId: order,
        priority,
        timeout: { seconds: BigInt(Math.max(1, Math.round(timeoutSeconds || 3600))) },
      });
      this.taskId = answer.taskId;
      replace(this.placed, "Placed: task ", h("code", { id: "task-id" }, answer.taskId), ` (${answer.queuePosition} ahead of it).`);
      this.watch(order);
    } catch (error) {
      replace(this.placed, h("span", { class: "error" }, describe(error).text));
    }
  }

  private async propose(order: string, proposal: string, applicantName: string, address: string, coverage: string, useAgentic: boolean): Promise<void> {
    try {
      const answer = await processor.submitProposal({
        orderReqId: order,
        proposalId: proposal,
        useAgentic,
        submission: { applicantName, address, coverageAmount: BigInt(/^\d+$/.test(coverage) ? coverage : "0") },
      });
      this.proposed.textContent = answer.duplicate ? `${proposal} was submitted before: nothing new.` : `${proposal} accepted: it is being priced.`;
      const next = /^(.*?)(\d+)$/.exec(proposal);
      const proposalInput = document.getElementById("proposal-id") as HTMLInputElement | null;
      if (next && proposalInput) proposalInput.value = `${next[1]}${Number(next[2]) + 1}`;
    } catch (error) {
      // The service's message names each bad field (submission.applicant_name, …).
      this.proposed.textContent = describe(error).text;
    }
  }

  private async complete(order: string): Promise<void> {
    try {
      const answer = await processor.completeOrder({ orderReqId: order });
      this.proposed.textContent = `Completed: event ${answer.event?.sequence ?? "?"} closes the order.`;
    } catch (error) {
      this.proposed.textContent = describe(error).text;
    }
  }

  watch(order: string): void {
    if (this.watching && this.watchedOrder === order) return;
    this.watching?.abort();
    this.watching = new AbortController();
    if (this.watchedOrder !== order) {
      this.watchedOrder = order;
      this.lastSequence = 0n;
      replace(this.events);
    }
    void this.follow(order, this.watching.signal);
  }

  /** Follow the order's events; a broken stream resumes after the last sequence seen. */
  private async follow(order: string, signal: AbortSignal): Promise<void> {
    const say = (text: string): void => {
      this.connection.textContent = text;
    };
    await keepStreaming(
      signal,
      async (reconnecting, live) => {
        say(reconnecting ? `Resuming after event ${this.lastSequence}…` : `Watching ${order}…`);
        const request = { orderReqId: order, afterSequence: this.lastSequence };
        for await (const { event } of processor.watchOrder(request, { signal })) {
          live();
          say(`Live: ${order}, ${this.lastSequence + 1n} events so far.`);
          if (event) this.add(event);
          if (event?.kind === OrderEventKind.ORDER_COMPLETED) {
            say(`${order} completed: ${event.sequence} events.`);
            void this.result();
          }
        }
        return true;
      },
      say,
      (reason, seconds) =>
        `Connection lost (${reason}); resuming after event ${this.lastSequence} in ${seconds} s.`,
    );
  }

  private add(event: OrderEvent): void {
    this.lastSequence = event.sequence;
    const premium = event.quote?.result ? ` premium ${money(event.quote.result.annualPremiumCents)}` : "";
    this.events.append(
      h(
        "li",
        { "data-sequence": String(event.sequence), "data-kind": OrderEventKind[event.kind] ?? "" },
        h("strong", { class: "sequence" }, `#${event.sequence}`),
        " ",
        h("span", { class: `badge kind-${(OrderEventKind[event.kind] ?? "").toLowerCase()}` }, eventKindWords(event.kind)),
        ` ${event.text || event.proposalId}${premium}${event.errorMessage ? `: ${event.errorMessage}` : ""} `,
        h("time", {}, time(event.createdAt)),
      ),
    );
  }

  /** The task's result; just after the order completes the task may still be
   * finishing, so a task not yet final is read again a few times. */
  private async result(): Promise<void> {
    if (this.taskId === "") {
      replace(this.task, h("p", {}, "Place an order first: its task id is what the result is read by."));
      return;
    }
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        const { result } = await requestor.getTaskResult({ taskId: this.taskId });
        if (result) this.renderTask(result);
        if (!result || FINAL_TASK.has(result.status) || this.watchedOrder === "") return;
      } catch (error) {
        replace(this.task, h("p", { class: "error" }, describe(error).text));
        return;
      }
      await pause(backoff(attempt), new AbortController().signal);
    }
  }

  private renderTask(result: TaskResult): void {
    replace(
      this.task,
      facts({}, [
        ["Task", h("code", {}, result.taskId)],
        ["Status", taskStatusWords(result.status), "task-status"],
        ["Priority", taskPriorityWords(result.priority)],
        ["Last sequence", String(result.lastSequence)],
        ["Reconnects", String(result.reconnects)],
        ["Placed", time(result.createdAt)],
        ["Finished", time(result.completedAt)],
        ["Error", result.errorMessage || "none"],
      ]),
      h("ol", { id: "task-proposals" }, ...result.proposals.map((p) => h("li", {}, `#${p.sequence} ${p.text}${p.quote?.result ? `: premium ${money(p.quote.result.annualPremiumCents)}` : ""}`))),
    );
  }
}
