// Keyboard navigation for long lists: one tab stop per list (roving tabindex),
// arrow keys / Home / End / PageUp / PageDown move between items, Enter opens
// (items are links or buttons, so Enter and Space work natively).

/** Makes the `selector` items inside `container` a roving-tabindex list. */
export function rovingList(container, selector) {
  const items = () => Array.from(container.querySelectorAll(selector));

  function settle(preferred) {
    const all = items();
    if (!all.length) return;
    const current = preferred && all.includes(preferred)
      ? preferred
      : all.find((el) => el.tabIndex === 0) || all[0];
    for (const el of all) {
      const want = el === current ? 0 : -1;
      if (el.tabIndex !== want) el.tabIndex = want; // untouched rows stay untouched
    }
  }

  container.addEventListener("keydown", (event) => {
    const all = items();
    const index = all.indexOf(document.activeElement);
    if (index < 0) return;
    const page = Math.max(1, Math.floor(container.clientHeight / 40) || 10);
    const moves = {
      ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: all.length - 1,
      PageDown: index + page, PageUp: index - page,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = all[Math.min(Math.max(moves[event.key], 0), all.length - 1)];
    settle(next);
    next.focus();
  });
  container.addEventListener("focusin", (event) => {
    if (event.target.matches?.(selector)) settle(event.target);
  });
  return { settle };
}
