// Submit a quote: queued (SubmitQuote) or run now (RunQuote).

import { Code } from "@connectrpc/connect";
import {
  Priority,
  PropertyType,
  type QueueMessage,
} from "../gen/quoteflow/quote/v1/quote_service_pb.js";
import { clearFieldErrors, field, h, replace, select, setFieldError } from "../dom.js";
import { durationSeconds, seconds, statusClass, statusWords } from "../format.js";
import { describe, quote } from "../rpc.js";
import { alertText, type View } from "./view.js";

/** A field violation's path, as the quote service names it, → the control it is about. */
const CONTROLS: Record<string, string> = {
  "submission.applicant_name": "applicant-name",
  "submission.address": "address",
  "submission.coverage_amount": "coverage",
  "submission.property_type": "property-type",
  "submission.year_built": "year-built",
  "submission.prior_claims": "prior-claims",
  priority: "priority",
  request_id: "request-id",
  fairness_key: "fairness-key",
  delay: "delay",
};

export class SubmitView implements View {
  readonly name = "submit";
  readonly title = "Submit a quote";
  readonly element: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly outcome: HTMLElement;

  constructor(private readonly follow: (id: string) => void) {
    const integer = (id: string, min: string, max: string, value = ""): HTMLInputElement =>
      h("input", { id, name: id, type: "number", inputmode: "numeric", min, max, step: "1", value });
    this.form = h(
      "form",
      { id: "submit-form", novalidate: true, onsubmit: (event) => void this.submit(event) },
      h(
        "fieldset",
        {},
        h("legend", {}, "Mode"),
        h(
          "div",
          { class: "choices" },
          h(
            "span",
            { class: "choice" },
            h("input", { type: "radio", id: "mode-async", name: "mode", value: "async", checked: true }),
            h("label", { for: "mode-async" }, "Queue it (async: SubmitQuote)"),
          ),
          h(
            "span",
            { class: "choice" },
            h("input", { type: "radio", id: "mode-sync", name: "mode", value: "sync" }),
            h("label", { for: "mode-sync" }, "Run now (sync: RunQuote)"),
          ),
        ),
      ),
      field("Applicant's full name", h("input", { id: "applicant-name", name: "applicant-name", autocomplete: "name" })),
      field("Property address", h("input", { id: "address", name: "address", autocomplete: "street-address" })),
      field("Coverage (whole currency units)", integer("coverage", "1", "50000000", "250000"), "1 to 50,000,000"),
      field(
        "Property type",
        select("property-type", [
          [String(PropertyType.UNSPECIFIED), "Not given (rated as a single-family house)"],
          [String(PropertyType.SINGLE_FAMILY), "Single-family house"],
          [String(PropertyType.APARTMENT), "Apartment"],
          [String(PropertyType.COMMERCIAL), "Commercial"],
        ]),
      ),
      field("Year built", integer("year-built", "0", "2100", "0"), "0 if unknown"),
      field("Prior claims (last five years)", integer("prior-claims", "0", "20", "0")),
      field(
        "Priority",
        select("priority", [
          [String(Priority.UNSPECIFIED), "Automatic (from the coverage)"],
          [String(Priority.LOW), "Low"],
          [String(Priority.NORMAL), "Normal"],
          [String(Priority.HIGH), "High"],
          [String(Priority.URGENT), "Urgent"],
        ]),
      ),
      field(
        "Fairness key (tenant or broker)",
        h("input", { id: "fairness-key", name: "fairness-key", autocomplete: "off" }),
        "optional: within a priority, keys take turns",
      ),
      field("Delay (seconds)", integer("delay", "0", "31622400", ""), "queued only: not priced before then"),
      h(
        "div",
        { class: "field switch" },
        h("input", { type: "checkbox", role: "switch", id: "use-agentic", name: "use-agentic" }),
        h("label", { for: "use-agentic" }, "Step-by-step underwriting (use_agentic)"),
      ),
      h("button", { type: "submit", id: "submit-button" }, "Submit"),
    );
    this.outcome = h("div", { id: "submit-outcome", "aria-live": "polite" });
    this.element = h("section", { "aria-labelledby": "submit-title" }, h("h2", { id: "submit-title" }, this.title), this.form, this.outcome);
  }

  show(): void {}
  hide(): void {}

  private value(id: string): string {
    return (this.form.querySelector(`#${id}`) as HTMLInputElement | HTMLSelectElement).value.trim();
  }

  private async submit(event: Event): Promise<void> {
    event.preventDefault();
    clearFieldErrors(this.form);
    alertText("");
    const sync = (this.form.querySelector("#mode-sync") as HTMLInputElement).checked;
    const submission = {
      applicantName: this.value("applicant-name"),
      address: this.value("address"),
      // An empty or unreadable number goes as 0, which the service names as a violation.
      coverageAmount: BigInt(/^\d+$/.test(this.value("coverage")) ? this.value("coverage") : "0"),
      propertyType: Number(this.value("property-type")) as PropertyType,
      yearBuilt: Number(this.value("year-built")) || 0,
      priorClaims: Number(this.value("prior-claims")) || 0,
    };
    const request = {
      submission,
      priority: Number(this.value("priority")) as Priority,
      useAgentic: (this.form.querySelector("#use-agentic") as HTMLInputElement).checked,
      fairnessKey: this.value("fairness-key"),
    };
    const delay = this.value("delay");
    const button = this.form.querySelector("#submit-button") as HTMLButtonElement;
    button.disabled = true;
    replace(this.outcome, h("p", {}, sync ? "Running the quote now…" : "Queueing…"));
    try {
      if (sync) {
        const { message } = await quote.runQuote(request);
        if (message) this.done(message, "Ran now");
      } else {
        // An unreadable delay goes as -1 s, which the service names as a violation.
        const schedule = delay
          ? { case: "delay" as const, value: { seconds: BigInt(/^\d+$/.test(delay) ? delay : "-1") } }
          : { case: undefined };
        const answer = await quote.submitQuote({ ...request, schedule });
        if (answer.message) {
          const eta = seconds(durationSeconds(answer.estimatedProcessingTime));
          this.done(answer.message, `Queued at position ${answer.queuePosition}, expected within ${eta}`);
        }
      }
    } catch (error) {
      const described = describe(error);
      for (const [path, description] of described.violations) {
        setFieldError(CONTROLS[path] ?? "applicant-name", description);
      }
      if (described.code === Code.InvalidArgument && described.violations.size > 0) {
        replace(this.outcome, h("p", { class: "error" }, "Some fields need correcting: see the messages next to them."));
        const first = this.form.querySelector<HTMLElement>("[aria-invalid]");
        first?.focus();
      } else {
        replace(this.outcome, h("p", { class: "error", id: "submit-error" }, described.text));
      }
    } finally {
      button.disabled = false;
    }
  }

  private done(message: QueueMessage, what: string): void {
    replace(
      this.outcome,
      h(
        "p",
        { id: "submit-result" },
        `${what}: message `,
        h("a", { href: `#/follow/${encodeURIComponent(message.id)}` }, h("code", {}, message.id)),
        " is ",
        h("span", { class: statusClass(message.status) }, statusWords(message.status)),
        ".",
      ),
    );
    this.follow(message.id);
  }
}
