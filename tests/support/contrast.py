"""WCAG 2.x contrast, measured in the page a person sees: every element with text of its own (or a
field holding text), its computed colour against the first opaque background behind it.
AA asks 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold)."""

from __future__ import annotations

from playwright.async_api import Page

CONTRAST_FAILURES = r"""() => {
  const rgba = (text) => {
    const m = text.match(/[\d.]+/g).map(Number);
    return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
  };
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map(v => (v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const blend = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const bg = rgba(getComputedStyle(node).backgroundColor);
      if (bg[3] > 0) layers.push(bg);
      if (bg[3] >= 1) break;
    }
    return layers.reverse().reduce((under, layer) => blend(layer, under), [255, 255, 255, 1]);
  };
  const failures = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    const ownText = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())
                    || (el.matches("input:not([type=hidden])") && el.value);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    const hidden = style.visibility === "hidden" || style.display === "none" || !box.width || !box.height;
    if (!ownText || hidden) continue;
    checked += 1;
    const bg = background(el);
    const fg = blend(rgba(style.color), bg);
    const [light, dark] = [luminance(fg), luminance(bg)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) {
      const text = (el.textContent || el.value).trim().slice(0, 40);
      failures.push(`${el.tagName.toLowerCase()}.${el.className} "${text}" ${ratio.toFixed(2)}:1 < ${needed}:1`);
    }
  }
  return {checked, failures};
}"""


async def passes_contrast(page: Page) -> None:
    found = await page.evaluate(CONTRAST_FAILURES)
    assert found["checked"] > 2, page.url  # the check really looked at the page's text
    assert found["failures"] == [], f"{page.url}: {found['failures']}"
