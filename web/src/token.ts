// The access token the page calls with: pasted into the header's field, kept
// for this tab only (sessionStorage), sent as `Authorization: Bearer` on every
// call, and the services decide what its roles allow.

import type { Interceptor } from "@connectrpc/connect";

const KEY = "quoteflow.token";

export function currentToken(): string {
  return window.sessionStorage.getItem(KEY) ?? "";
}

export function useToken(token: string): void {
  if (token.trim()) window.sessionStorage.setItem(KEY, token.trim());
  else window.sessionStorage.removeItem(KEY);
}

export const bearerToken: Interceptor = (next) => async (request) => {
  const token = currentToken();
  if (token) request.header.set("Authorization", `Bearer ${token}`);
  return await next(request);
};
