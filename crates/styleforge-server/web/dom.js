// DOM helpers shared by the page's modules.

// A new `tag` element: `attrs` become attributes (`class` the class name, `text` the text,
// `on<event>` a listener; null, undefined and false are left out, true is an empty attribute),
// then `children` (elements or strings; falsy ones skipped) are appended.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c) e.append(c);
  return e;
}
