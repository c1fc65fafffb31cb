// Small DOM helpers: the page is plain HTML, built with these rather than a framework.

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | undefined | ((event: Event) => void)>;

/** An element with attributes ("on…" keys are listeners; true/false toggle a boolean attribute) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, value);
    }
  }
  append(element, ...children);
  return element;
}

/** A term and what it says, in a facts list; id names the value's element. */
export type Fact = [term: string, value: Child, id?: string];

/** A description list of facts (class "facts"). */
export function facts(attributes: Attributes, rows: Fact[]): HTMLDListElement {
  return h(
    "dl",
    { class: "facts", ...attributes },
    ...rows.flatMap(([term, value, id]) => [h("dt", {}, term), h("dd", { id }, value)]),
  );
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** Replace every child of parent. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** A labelled field: the label names the control, the hint and the error describe it. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLElement {
  const errorId = `${control.id}-error`;
  const hintId = hint ? `${control.id}-hint` : undefined;
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { id: hintId, class: "hint" }, hint) : null,
    h("p", { id: errorId, class: "field-error", "aria-live": "polite" }),
  );
}

export function select(id: string, options: Array<[string, string]>, value = ""): HTMLSelectElement {
  const element = h("select", { id, name: id });
  for (const [optionValue, text] of options) {
    element.append(h("option", { value: optionValue, selected: optionValue === value }, text));
  }
  return element;
}

/** Show a field's violation next to it, or clear it (message ""). */
export function setFieldError(controlId: string, message: string): void {
  const control = document.getElementById(controlId);
  const error = document.getElementById(`${controlId}-error`);
  if (control === null || error === null) return;
  error.textContent = message;
  if (message) control.setAttribute("aria-invalid", "true");
  else control.removeAttribute("aria-invalid");
}

export function clearFieldErrors(form: HTMLElement): void {
  for (const error of form.querySelectorAll<HTMLElement>(".field-error")) error.textContent = "";
  for (const control of form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}
