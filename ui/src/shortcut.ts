// Shortcuts are set by pressing them: a focused shortcut field takes the next key with its
// modifiers, written as the global-shortcut plugin reads them (`Ctrl+Alt+Space`).

const MODIFIER_KEYS = new Set(["Control", "Alt", "Shift", "Meta", "AltGraph", "OS"]);

/** The shortcut `ev` presses, or null while only modifiers are down (or none is). */
export function shortcutOf(ev: Pick<KeyboardEvent, "key" | "code" | "ctrlKey" | "altKey" | "shiftKey" | "metaKey">): string | null {
  if (MODIFIER_KEYS.has(ev.key)) return null;
  const mods = [ev.ctrlKey && "Ctrl", ev.altKey && "Alt", ev.shiftKey && "Shift", ev.metaKey && "Super"].filter(Boolean);
  // A global shortcut without a modifier would take the key from every other app.
  if (mods.length === 0) return null;
  const key = ev.code.replace(/^Key/, "").replace(/^Digit/, "").replace(/^Arrow/, "");
  return [...mods, key].join("+");
}

/** Makes `input` capture a shortcut when focused: the keys pressed replace its value; Esc or
 * leaving the field keeps what it had. */
export function captureShortcut(input: HTMLInputElement): void {
  input.addEventListener("focus", () => input.classList.add("capturing"));
  input.addEventListener("blur", () => input.classList.remove("capturing"));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Tab") return;
    ev.preventDefault();
    ev.stopPropagation();
    if (ev.key === "Escape") {
      input.blur();
      return;
    }
    const shortcut = shortcutOf(ev);
    if (shortcut) input.value = shortcut;
  });
}
