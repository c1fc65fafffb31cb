// What every view of the page is: a section it fills, shown for its route.

export interface View {
  /** The route's first part: "#/follow/ID" is view "follow" with argument "ID". */
  readonly name: string;
  readonly title: string;
  readonly element: HTMLElement;
  /** Shown, with the rest of the route; starts what it streams. */
  show(argument: string): void;
  /** Hidden; stops what it streams. */
  hide(): void;
}

/** The alert every view reports its errors to, in words; "" clears it. */
export function alertText(text: string): void {
  const alert = document.getElementById("alert");
  if (alert === null) return;
  alert.textContent = text;
  alert.hidden = text === "";
}
