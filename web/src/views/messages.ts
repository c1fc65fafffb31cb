// Messages: a list filtered by status, priority and dead-lettered, a page at a
// time (page tokens), with cancel and redrive, one or all matching.

import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  MessageStatus,
  Priority,
  type ListMessagesRequestSchema,
  type QueueMessage,
} from "../gen/quoteflow/quote/v1/quote_service_pb.js";
import { field, h, replace, select } from "../dom.js";
import { FINAL_STATUSES, priorityWords, statusClass, statusWords, time } from "../format.js";
import { describe, quote } from "../rpc.js";
import { alertText, type View } from "./view.js";

type Filter = MessageInitShape<typeof ListMessagesRequestSchema>;

export class MessagesView implements View {
  readonly name = "messages";
  readonly title = "Messages";
  readonly element: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly list: HTMLElement;
  private readonly outcome: HTMLElement;
  /** The tokens of the pages before this one: the way back. */
  private previous: string[] = [];
  private token = "";
  private next = "";

  constructor() {
    const statuses: Array<[string, string]> = [[String(MessageStatus.UNSPECIFIED), "Any status"]];
    for (const status of [MessageStatus.PENDING, MessageStatus.PROCESSING, MessageStatus.AWAITING_REVIEW, MessageStatus.COMPLETED, MessageStatus.FAILED, MessageStatus.CANCELLED, MessageStatus.REJECTED]) {
      statuses.push([String(status), statusWords(status)]);
    }
    const priorities: Array<[string, string]> = [[String(Priority.UNSPECIFIED), "Any priority"]];
    for (const priority of [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT]) {
      priorities.push([String(priority), priorityWords(priority)]);
    }
    this.form = h(
      "form",
      {
        id: "messages-filter",
        class: "inline",
        onsubmit: (event) => {
          event.preventDefault();
          this.previous = [];
          void this.load("");
        },
      },
      field("Status", select("filter-status", statuses)),
      field("Priority", select("filter-priority", priorities)),
      h("div", { class: "field switch" }, h("input", { type: "checkbox", id: "filter-dead", name: "filter-dead" }), h("label", { for: "filter-dead" }, "Dead letters only")),
      field("Per page", select("filter-size", [["10", "10"], ["25", "25"], ["50", "50"], ["100", "100"]], "25")),
      h("button", { type: "submit", id: "list-messages" }, "List"),
      h("button", { type: "button", id: "redrive-all", onclick: () => void this.redriveAll() }, "Redrive every matching dead letter"),
    );
    this.list = h("div", { id: "messages-list", class: "scroll" });
    this.outcome = h("p", { id: "messages-outcome", "aria-live": "polite" });
    this.element = h(
      "section",
      { "aria-labelledby": "messages-title" },
      h("h2", { id: "messages-title" }, this.title),
      this.form,
      this.outcome,
      this.list,
    );
  }

  show(): void {
    void this.load(this.token);
  }

  hide(): void {}

  private filter(): Filter {
    const value = (id: string) => (this.form.querySelector(`#${id}`) as HTMLSelectElement).value;
    return {
      status: Number(value("filter-status")) as MessageStatus,
      priority: Number(value("filter-priority")) as Priority,
      deadLetteredOnly: (this.form.querySelector("#filter-dead") as HTMLInputElement).checked,
      pageSize: Number(value("filter-size")),
    };
  }

  private async load(token: string): Promise<void> {
    try {
      const page = await quote.listMessages({ ...this.filter(), pageToken: token });
      this.token = token;
      this.next = page.nextPageToken;
      this.render(page.messages);
    } catch (error) {
      replace(this.list, h("p", { class: "error" }, describe(error).text));
    }
  }

  private render(messages: QueueMessage[]): void {
    const pager = h(
      "div",
      { class: "pager" },
      h("button", { type: "button", id: "page-previous", disabled: this.previous.length === 0, onclick: () => void this.load(this.previous.pop() ?? "") }, "Previous page"),
      h("button", {
        type: "button",
        id: "page-next",
        disabled: this.next === "",
        onclick: () => {
          this.previous.push(this.token);
          void this.load(this.next);
        },
      }, "Next page"),
    );
    if (messages.length === 0) {
      replace(this.list, h("p", {}, "No message matches."), pager);
      return;
    }
    replace(
      this.list,
      h(
        "table",
        { id: "messages-table" },
        h("caption", {}, "Messages, oldest first"),
        h("thead", {}, h("tr", {}, ...["Id", "Applicant", "Priority", "Status", "Created", "Retries", "Actions"].map((name) => h("th", { scope: "col" }, name)))),
        h("tbody", {}, ...messages.map((m) => this.row(m))),
      ),
      pager,
    );
  }

  private row(message: QueueMessage): HTMLElement {
    const actions = h("td", { class: "actions" });
    if (!FINAL_STATUSES.has(message.status)) {
      actions.append(h("button", { type: "button", class: "cancel", "aria-label": `Cancel ${message.id}`, onclick: () => void this.act(() => quote.cancelMessage({ id: message.id }), `Cancelled ${message.id}.`) }, "Cancel"));
    }
    if (message.deadLettered) {
      actions.append(h("button", { type: "button", class: "redrive", "aria-label": `Redrive ${message.id}`, onclick: () => void this.act(() => quote.redriveMessage({ id: message.id }), `Redrove ${message.id}.`) }, "Redrive"));
    }
    return h(
      "tr",
      { "data-id": message.id },
      h("td", {}, h("a", { href: `#/follow/${encodeURIComponent(message.id)}` }, h("code", {}, message.id.slice(0, 12)))),
      h("td", {}, message.payload?.applicantName ?? ""),
      h("td", {}, priorityWords(message.priority)),
      h("td", {}, h("span", { class: statusClass(message.status) }, statusWords(message.status)), message.deadLettered ? " (dead letter)" : ""),
      h("td", {}, time(message.createdAt)),
      h("td", {}, `${message.retryCount}/${message.maxRetries}`),
      actions,
    );
  }

  private async act(call: () => Promise<unknown>, done: string): Promise<void> {
    alertText("");
    try {
      await call();
      this.outcome.textContent = done;
    } catch (error) {
      alertText(describe(error).text);
    }
    await this.load(this.token);
  }

  /** Every dead letter matching the filter: listed first, every page of it,
   * then redriven one by one, each once (one that fails again stays dead). */
  private async redriveAll(): Promise<void> {
    alertText("");
    const ids: string[] = [];
    let redriven = 0;
    let refused = 0;
    try {
      let token = "";
      do {
        const request: Filter = { ...this.filter(), deadLetteredOnly: true, pageSize: 1000, pageToken: token };
        const page = await quote.listMessages(request);
        ids.push(...page.messages.filter((m) => m.deadLettered).map((m) => m.id));
        token = page.nextPageToken;
      } while (token !== "");
      for (const id of ids) {
        try {
          await quote.redriveMessage({ id });
          redriven++;
        } catch (error) {
          refused++;
          alertText(describe(error).text);
        }
      }
      this.outcome.textContent = `Redrove ${redriven} dead letter${redriven === 1 ? "" : "s"}${refused ? `; ${refused} could not be` : ""}.`;
    } catch (error) {
      alertText(describe(error).text);
    }
    await this.load("");
  }
}
