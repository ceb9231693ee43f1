import { describe, expect, it } from "vitest";
import { shortcutOf } from "./shortcut";

describe("shortcutOf", () => {
  const key = (code: string, key: string, mods: Partial<KeyboardEvent> = {}) =>
    ({ code, key, ctrlKey: false, altKey: false, shiftKey: false, metaKey: false, ...mods }) as KeyboardEvent;
  it("writes what was pressed as the shortcut plugin reads it", () => {
    expect(shortcutOf(key("Space", " ", { ctrlKey: true, altKey: true }))).toBe("Ctrl+Alt+Space");
    expect(shortcutOf(key("KeyQ", "q", { ctrlKey: true, shiftKey: true }))).toBe("Ctrl+Shift+Q");
    expect(shortcutOf(key("Digit5", "5", { metaKey: true }))).toBe("Super+5");
    expect(shortcutOf(key("ArrowUp", "ArrowUp", { altKey: true }))).toBe("Alt+Up");
    expect(shortcutOf(key("F9", "F9", { ctrlKey: true }))).toBe("Ctrl+F9");
  });
  it("waits for a key past the modifiers, and wants a modifier", () => {
    expect(shortcutOf(key("ControlLeft", "Control", { ctrlKey: true }))).toBeNull();
    expect(shortcutOf(key("KeyA", "a"))).toBeNull();
  });
});
