/** A tiny DOM builder: the panel is plain DOM, no framework. */

export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | boolean | ((e: Event) => void)> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      el.addEventListener(name.replace(/^on/, ''), value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else if (value !== false) {
      el.setAttribute(name, value);
    }
  }
  for (const child of children) {
    if (child) {
      el.append(child);
    }
  }
  return el;
}

/** Replace the children of ``el``. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...(children.filter(Boolean) as (Node | string)[]));
}

/** An SVG document from the service, with anything active (scripts, handlers, links) removed. */
export function safeSvg(text: string): Element | null {
  const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
  const svg = doc.documentElement;
  if (!svg || svg.nodeName.toLowerCase() !== 'svg') {
    return null;
  }
  svg.querySelectorAll('script, foreignObject, iframe').forEach(n => n.remove());
  for (const el of [svg, ...Array.from(svg.querySelectorAll('*'))]) {
    for (const attr of Array.from(el.attributes)) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on') || ((name === 'href' || name === 'xlink:href') && !attr.value.startsWith('#'))) {
        el.removeAttribute(attr.name);
      }
    }
  }
  return document.importNode(svg, true);
}
