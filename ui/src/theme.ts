// The window's colours: light or dark as Settings say, or as the system's appearance setting
// (`prefers-color-scheme`) says and whenever it changes.
export type ThemeSetting = "system" | "light" | "dark";

const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
let chosen: ThemeSetting = "system";

function show(): void {
  const dark = chosen === "dark" || (chosen === "system" && darkQuery.matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
}

darkQuery.addEventListener("change", show);

/** Applies the theme Settings chose. */
export function applyTheme(setting: ThemeSetting): void {
  chosen = setting;
  show();
}
