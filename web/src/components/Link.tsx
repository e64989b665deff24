import type { ComponentChildren } from "preact";
import { safeHref } from "../lib/dom";
import { handleLinkClick } from "../router";

interface Props {
  to: string;
  class?: string;
  testid?: string;
  title?: string;
  current?: boolean;
  children: ComponentChildren;
}

/** A link to an app route (same origin only; anything else renders as "#"). */
export function Link({ to, class: cls, testid, title, current, children }: Props) {
  const href = safeHref(to);
  return (
    <a
      href={href}
      class={cls}
      data-testid={testid}
      title={title}
      aria-current={current ? "page" : undefined}
      onClick={(ev) => handleLinkClick(ev, href)}
    >
      {children}
    </a>
  );
}
