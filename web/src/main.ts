// The console's page: one view per route (#/submit, #/follow/ID, #/dashboard,
// #/messages, #/orders), each a client of the services through the bridge.

import { byId, h } from "./dom.js";
import { currentToken, useToken } from "./token.js";
import { DashboardView } from "./views/dashboard.js";
import { FollowView } from "./views/follow.js";
import { MessagesView } from "./views/messages.js";
import { OrdersView } from "./views/orders.js";
import { SubmitView } from "./views/submit.js";
import { alertText, type View } from "./views/view.js";

const follow = new FollowView();
const views: View[] = [
  new SubmitView((id) => {
    window.location.hash = `#/follow/${encodeURIComponent(id)}`;
  }),
  follow,
  new DashboardView(),
  new MessagesView(),
  new OrdersView(),
];

const main = byId("main");
for (const view of views) {
  view.element.hidden = true;
  view.element.classList.add("view");
  main.append(view.element);
}
let shown: View | undefined;

function route(): void {
  const [, name = "submit", ...rest] = window.location.hash.split("/");
  const view = views.find((v) => v.name === name) ?? views[0];
  if (view === undefined) return;
  if (shown !== view) {
    shown?.hide();
    if (shown) shown.element.hidden = true;
    alertText("");
    view.element.hidden = false;
    shown = view;
    document.title = `${view.title} · quoteflow console`;
    for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
      if (link.dataset.view === view.name) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    main.focus({ preventScroll: true });
  }
  view.show(rest.join("/"));
}

const tokenForm = byId<HTMLFormElement>("token-form");
const tokenInput = byId<HTMLInputElement>("token");
tokenInput.value = currentToken();
tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  useToken(tokenInput.value);
  alertText("");
  // The open views call again with the new token.
  route();
});

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => {
  alertText(`Something failed on the page: ${String(event.reason)}`);
});
route();
document.body.append(h("footer", {}, "Live views stream from the services; the dashboard reads counts every 2 s while shown."));
